use super::Build;

#[test]
fn a_build_is_ours_only_if_it_matches() {
    assert!(Build::of_this_process(false).is_ours());
    assert!(Build::of_this_process(true).is_ours());
    // Another file, or other bytes: another build.
    assert!(!Build::File(0, 0).is_ours());
    assert!(!Build::Digest(1).is_ours());
}

#[test]
fn the_digest_is_of_the_executable_bytes() {
    let Build::Sha256(ours) = Build::of_this_process(true) else {
        panic!("not a digest");
    };
    let bytes = mp_spawn::identity::digest_of("/proc/self/exe".as_ref()).unwrap();
    assert_eq!(bytes.0, ours);
    // Other bytes: another build.
    let mut other = ours;
    other[0] ^= 1;
    assert!(!Build::Sha256(other).is_ours());
    assert!(mp_spawn::identity::digest_of("/nonexistent".as_ref()).is_err());
}
