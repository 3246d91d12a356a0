use super::{decode, encode};

fn round_trip<T: 'static + Clone + PartialEq + std::fmt::Debug, U: 'static>(items: &[T]) -> Vec<U> {
    let mut bytes = Vec::new();
    assert!(encode(items, &mut bytes));
    decode::<U>(&bytes).expect("plain").expect("whole values")
}

#[test]
fn numbers_round_trip_as_themselves_and_as_one_tuples() {
    let ints = [0u64, 1, u64::MAX, 1 << 40];
    assert_eq!(round_trip::<u64, u64>(&ints), ints);
    let tuples: Vec<(u64,)> = round_trip::<u64, (u64,)>(&ints);
    assert_eq!(tuples, ints.map(|v| (v,)));
    assert_eq!(round_trip::<(u64,), u64>(&tuples), ints);

    let signed = [i32::MIN, -1, 0, i32::MAX];
    assert_eq!(round_trip::<i32, i32>(&signed), signed);
    let floats = [0.5f64, -0.0, f64::INFINITY, f64::MIN_POSITIVE];
    assert_eq!(round_trip::<f64, f64>(&floats), floats);
    let big = [u128::MAX, 3];
    assert_eq!(round_trip::<u128, u128>(&big), big);
    let sizes = [usize::MAX, 0];
    assert_eq!(round_trip::<usize, usize>(&sizes), sizes);
    let isizes = [isize::MIN, -7];
    assert_eq!(round_trip::<isize, isize>(&isizes), isizes);
}

#[test]
fn values_are_fixed_width_little_endian() {
    let mut bytes = Vec::new();
    assert!(encode(&[1u32, 0x0203_0405], &mut bytes));
    assert_eq!(bytes, [1, 0, 0, 0, 5, 4, 3, 2]);
    bytes.clear();
    assert!(encode(&[1usize], &mut bytes));
    assert_eq!(bytes.len(), 8);
}

#[test]
fn other_types_are_left_to_serde() {
    let mut bytes = Vec::new();
    assert!(!encode(&["text".to_string()], &mut bytes));
    assert!(!encode(&[(1u64, 2u64)], &mut bytes));
    assert!(!encode(&[true], &mut bytes));
    assert!(!encode(&[Some(1u8)], &mut bytes));
    assert!(bytes.is_empty());
    assert!(decode::<String>(&[]).is_none());
    assert!(decode::<(u8, u8)>(&[1, 2]).is_none());
}

#[test]
fn a_partial_value_is_an_error() {
    let err = decode::<u64>(&[0; 12]).expect("plain").unwrap_err();
    assert_eq!(err, "12 bytes are not a whole number of u64 values");
    let err = decode::<(f32,)>(&[0; 5]).expect("plain").unwrap_err();
    assert!(err.contains("f32"), "{err}");
    assert_eq!(
        decode::<u16>(&[]).expect("plain").unwrap(),
        Vec::<u16>::new()
    );
}
