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
    let Build::Digest(ours) = Build::of_this_process(true) else {
        panic!("not a digest");
    };
    assert_eq!(super::digest_file("/proc/self/exe").unwrap().max(1), ours);
    assert!(super::digest_file("/nonexistent").is_err());
}
