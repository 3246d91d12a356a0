//! The fields' byte order, and that every short input is a typed error, wherever it ends.

use super::*;

#[test]
fn fields_round_trip_in_order() {
    let mut buf = Vec::new();
    Writer::new(&mut buf)
        .u8(0xab)
        .u32(0x0102_0304)
        .u64(u64::MAX - 1)
        .i64(-2)
        .bytes(b"tail");
    assert_eq!(buf[1..5], [4, 3, 2, 1]);
    let mut r = Reader::new(&buf);
    assert_eq!(r.u8(), Ok(0xab));
    assert_eq!(r.u32(), Ok(0x0102_0304));
    assert_eq!(r.u64(), Ok(u64::MAX - 1));
    assert_eq!(r.i64(), Ok(-2));
    assert_eq!(r.position(), 21);
    assert_eq!(r.rest(), b"tail");
}

#[test]
fn every_short_input_is_a_typed_error() {
    let mut full = Vec::new();
    Writer::new(&mut full).u32(1).u64(2);
    for len in 0..full.len() {
        let mut r = Reader::new(&full[..len]);
        let got = r.u32().and_then(|a| Ok((a, r.u64()?)));
        let e = got.unwrap_err();
        assert_eq!(e.len, len);
        assert!(e.at + e.want > len, "{e}");
    }
    // A failed read leaves the reader where it was.
    let mut r = Reader::new(&full[..6]);
    assert_eq!(r.u32(), Ok(1));
    assert!(r.u64().is_err());
    assert_eq!(r.position(), 4);
    assert_eq!(r.rest(), &[2, 0]);
}

#[test]
fn an_offset_past_the_end_does_not_overflow() {
    let mut r = Reader::at(&[1, 2, 3], usize::MAX);
    assert_eq!(
        r.u64(),
        Err(Short {
            at: usize::MAX,
            want: 8,
            len: 3
        })
    );
    assert!(r.rest().is_empty());
    let e: std::io::Error = r.u8().unwrap_err().into();
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof);
}
