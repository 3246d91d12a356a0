use super::*;

/// Feeds `input` cut into pieces of `piece` bytes, as reads of a stream may cut it.
fn feed_in_pieces(state: &mut Registrations, input: &[u8], piece: usize) {
    for chunk in input.chunks(piece) {
        state.feed(chunk);
    }
}

#[test]
fn registrations_and_unlinks_leave_nothing_buffered() {
    let mut state = Registrations::default();
    let mut most_buffered = 0;
    // 200k create+unlink pairs (issue #24's measurement), read in pieces that cut messages.
    let mut input = Vec::new();
    for round in 0..200 {
        input.clear();
        for i in 0..1000 {
            let name = format!("mp-{round}-{i}-{}", "x".repeat(i % 200));
            input.extend_from_slice(format!("R {name}\nU {name}\n").as_bytes());
        }
        feed_in_pieces(&mut state, &input, 4093);
        most_buffered = most_buffered.max(state.partial.capacity());
    }
    assert!(state.live.is_empty(), "{} names kept", state.live.len());
    assert!(state.partial.is_empty());
    // At most one line, in a vector that may have doubled once past its length.
    assert!(
        most_buffered <= 2 * MAX_LINE,
        "{most_buffered} bytes buffered"
    );
}

#[test]
fn a_message_split_across_reads_is_parsed_whole() {
    let mut state = Registrations::default();
    feed_in_pieces(&mut state, b"R one\nR two\nR three\nU two\n", 1);
    assert_eq!(state.live, BTreeSet::from(["one".into(), "three".into()]));
    state.feed(b"U one\nR fo");
    assert_eq!(state.live, BTreeSet::from(["three".into()]));
    state.feed(b"ur\n");
    assert_eq!(state.live, BTreeSet::from(["three".into(), "four".into()]));
}

#[test]
fn garbage_and_an_endless_line_stay_bounded() {
    let mut state = Registrations::default();
    state.feed(b"R kept\n\xff\xfe\nX what\nnonsense\n");
    // A line with no end in sight is dropped, not kept.
    for _ in 0..1000 {
        state.feed(&[b'y'; 4096]);
        assert!(state.partial.len() <= MAX_LINE);
    }
    // Its end, then messages again.
    state.feed(b"yyy\nR next\n");
    assert_eq!(state.live, BTreeSet::from(["kept".into(), "next".into()]));
    assert!(state.partial.is_empty());
}

/// Moved from mp-managers' keeper, which this tracker replaces.
#[test]
fn the_tracker_keeps_only_well_formed_names() {
    let mut state = Registrations::default();
    for line in [
        &b"R psm_1"[..],
        b"R psm_2",
        b"U psm_1",
        b"R ../etc",
        b"R a/b",
        b"R ",
        b"X psm_3",
        b"Rpsm_4",
        b"R \xff\xfe",
        b"R psm\0x",
    ] {
        state.feed(line);
        state.feed(b"\n");
    }
    let too_long = format!("R {}\n", "n".repeat(MAX_NAME_LEN + 1));
    state.feed(too_long.as_bytes());
    assert_eq!(state.live.into_iter().collect::<Vec<_>>(), ["psm_2"]);
}
