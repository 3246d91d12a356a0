use super::decode;

#[test]
fn a_value_decodes_from_exactly_its_bytes() {
    let bytes = postcard::to_stdvec(&(7u32, "seven".to_owned())).unwrap();
    assert_eq!(
        decode::<(u32, String)>(&bytes).unwrap(),
        (7, "seven".to_owned())
    );
}

#[test]
fn bytes_left_over_are_an_error() {
    // A string's bytes start with its length: read as a u32, postcard alone says 3.
    let bytes = postcard::to_stdvec("abc").unwrap();
    assert_eq!(postcard::from_bytes::<u32>(&bytes).unwrap(), 3);
    let e = decode::<u32>(&bytes).unwrap_err();
    assert!(e.contains("3 bytes left over"), "{e}");
}

#[test]
fn too_few_or_bad_bytes_are_an_error() {
    assert!(decode::<u64>(&[]).is_err());
    assert!(decode::<bool>(&[2]).is_err());
    assert!(decode::<String>(&[5, b'a']).is_err());
}
