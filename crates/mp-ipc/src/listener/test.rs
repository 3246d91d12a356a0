use super::*;

#[test]
fn mac_is_hmac_sha256_with_the_digest_prefix() {
    // RFC 4231, test case 2.
    let out = mac(b"Jefe", b"what do ya want for nothing?");
    let (prefix, digest) = out.split_at(DIGEST.len());
    assert_eq!(prefix, b"{sha256}");
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn handshake_in_both_directions_over_a_pipe() {
    let (a, b) = crate::pipe(true).unwrap();
    let t = std::thread::spawn(move || {
        deliver_challenge(&a, b"k", Stop::NEVER).unwrap();
        answer_challenge(&a, b"k", Stop::NEVER).unwrap();
    });
    answer_challenge(&b, b"k", Stop::NEVER).unwrap();
    deliver_challenge(&b, b"k", Stop::NEVER).unwrap();
    t.join().unwrap();
}
