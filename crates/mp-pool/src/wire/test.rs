//! Frames round-trip through their builders and `Msg::parse`; bad frames parse as harmless.

use super::{Msg, Outcome, Prepared, ToPool, ToWorker};
use crate::wire::TaskFn;

fn id_entry_code(frame: &[u8]) -> Option<(u64, u32, i64)> {
    super::parse_task(frame).map(|t| (t.id, t.task.entry.index(), t.task.code))
}

#[test]
fn task_frames_carry_their_id_entry_and_code() {
    let task = TaskFn {
        entry: mp_spawn::code::RawCodeRef::from_index(42),
        code: 1 << 40,
    };
    let mut chunk = Prepared::encode(task, 3, 30, &[1u64, 2, 3]).unwrap();
    assert_eq!(chunk.frame[0], ToWorker::Task as u8);
    // The id is set at submission.
    assert_eq!(id_entry_code(&chunk.frame), Some((0, 42, 1 << 40)));
    chunk.set_id(7);
    assert_eq!(id_entry_code(&chunk.frame), Some((7, 42, 1 << 40)));
    // So is the tally, for a watched call; it touches nothing else.
    assert_eq!(super::parse_task(&chunk.frame).map(|t| t.tally), Some(0));
    chunk.set_tally(0x1234_0005);
    assert_eq!(
        super::parse_task(&chunk.frame).map(|t| t.tally),
        Some(0x1234_0005)
    );
    assert_eq!(id_entry_code(&chunk.frame), Some((7, 42, 1 << 40)));
    assert_eq!((chunk.chunk, chunk.index, chunk.len), (3, 30, 3));
    assert_eq!(id_entry_code(&super::STOP), None);
    assert_eq!(id_entry_code(&chunk.frame[..10]), None);
    assert_eq!(id_entry_code(&chunk.frame[..24]), None);
    assert_eq!(id_entry_code(&chunk.frame[..32]), None);
}

#[test]
fn result_frames_round_trip() {
    let mut frame = vec![9; 40];
    super::result_header(&mut frame, 5, 1 << 40);
    assert_eq!(frame.len(), super::RESULT_HEADER);
    super::set_outcome(&mut frame, Outcome::Panicked);
    frame.extend_from_slice(b"body");
    match Msg::parse(&frame, Vec::new()) {
        Msg::Result {
            slot,
            id,
            outcome,
            body,
            fds,
        } => {
            assert_eq!((slot, id, outcome), (5, 1 << 40, Outcome::Panicked));
            assert_eq!(body, b"body");
            assert!(fds.is_empty());
        }
        _ => panic!("not a result"),
    }
}

#[test]
fn control_frames_round_trip() {
    assert!(matches!(
        Msg::parse(&super::died(3, u32::MAX - 1), Vec::new()),
        Msg::Died { slot: 3, generation } if generation == u32::MAX - 1
    ));
    assert!(matches!(
        Msg::parse(&super::ready(4), Vec::new()),
        Msg::Ready { slot: 4 }
    ));
    match Msg::parse(&super::init_failed(1, "boom"), Vec::new()) {
        Msg::InitFailed { message } => assert_eq!(message, "boom"),
        _ => panic!("not InitFailed"),
    }
    assert!(matches!(Msg::parse(&super::WAKE, Vec::new()), Msg::Wake));
}

#[test]
fn bad_frames_are_harmless() {
    // Empty, unknown tag, and a result too short for its header: nothing but a wake-up.
    assert!(matches!(Msg::parse(&[], Vec::new()), Msg::Wake));
    assert!(matches!(Msg::parse(&[200, 1, 2], Vec::new()), Msg::Wake));
    assert!(matches!(
        Msg::parse(&[ToPool::Result as u8, 0, 0], Vec::new()),
        Msg::Wake
    ));
    // An unknown outcome is a decoding failure.
    assert_eq!(Outcome::from_byte(99), Outcome::DecodeFailed);
    for outcome in [
        Outcome::Ok,
        Outcome::Panicked,
        Outcome::EncodeFailed,
        Outcome::DecodeFailed,
    ] {
        assert_eq!(Outcome::from_byte(outcome as u8), outcome);
    }
}
