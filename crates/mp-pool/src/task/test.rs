use super::*;

fn square(x: u64) -> u64 {
    x * x
}

fn chunk_offset_of<F>(f: F) -> RawCodeRef
where
    F: Target<(u64,)> + Copy,
    F::Output: Serialize,
{
    task_fn::<F, (u64,)>(&f).unwrap().entry
}

fn init_offset_of<F: Target<(u64,)> + Copy>(f: F) -> RawCodeRef {
    init_fn::<F, (u64,)>(&f).unwrap().entry
}

#[test]
fn a_reference_names_its_entry_and_nothing_else_is_an_entry() {
    let chunk = chunk_offset_of(square);
    let init = init_offset_of(square);
    assert!(entry_at(chunk).is_some());
    assert!(init_entry_at(init).is_some());
    // An entry of the other kind, the slots beside an entry that are not entries of its
    // kind, and indexes past the table are refused: a corrupt frame cannot send a worker
    // anywhere.
    assert!(entry_at(init).is_none());
    assert!(init_entry_at(chunk).is_none());
    for wild in [u32::MAX, u32::MAX - 1, 1 << 30] {
        assert!(entry_at(RawCodeRef::from_index(wild)).is_none(), "{wild}");
        assert!(
            init_entry_at(RawCodeRef::from_index(wild)).is_none(),
            "{wild}"
        );
    }
}

#[test]
fn a_looked_up_entry_runs_the_function() {
    let entry = entry_at(chunk_offset_of(square)).expect("an entry");
    let mut args = Vec::new();
    assert!(
        plain::encode(&[(3u64,), (4u64,)], &mut args)
            || reduction::dumps_into(&vec![(3u64,), (4u64,)], &mut args).is_ok()
    );
    let mut frame = Vec::new();
    wire::result_header(&mut frame, 0, 0);
    let mut sent = Vec::new();
    let mut ticks = 0;
    entry(
        &args,
        Vec::new(),
        0,
        &mut frame,
        &mut |bytes, _| sent = bytes.to_vec(),
        &mut || ticks += 1,
    );
    // One tick per item: what a watched call's progress counts.
    assert_eq!(ticks, 2);
    assert_eq!(
        Outcome::from_byte(sent[wire::OUTCOME_AT]),
        Outcome::Ok,
        "{sent:?}"
    );
    let body = &sent[wire::RESULT_HEADER..];
    let squares: Vec<u64> = match plain::decode(body) {
        Some(values) => values.expect("plain"),
        None => reduction::loads(body, Vec::new()).expect("postcard"),
    };
    assert_eq!(squares, [9, 16]);
}

#[test]
fn a_fn_pointer_is_found_by_its_code_offset() {
    let f: fn(u64) -> u64 = std::hint::black_box(square);
    let task = task_fn::<fn(u64) -> u64, (u64,)>(&f).unwrap();
    assert_ne!(task.code, 0);
    let entry = entry_at(task.entry).expect("an entry");
    let mut args = Vec::new();
    assert!(plain::encode(&[(5u64,)], &mut args));
    let mut frame = Vec::new();
    wire::result_header(&mut frame, 0, 0);
    let mut sent = Vec::new();
    entry(
        &args,
        Vec::new(),
        task.code,
        &mut frame,
        &mut |bytes, _| sent = bytes.to_vec(),
        &mut || {},
    );
    assert_eq!(Outcome::from_byte(sent[wire::OUTCOME_AT]), Outcome::Ok);
    // A wrong offset is a typed failure of the chunk, never a jump.
    let mut frame = Vec::new();
    wire::result_header(&mut frame, 0, 0);
    entry(
        &args,
        Vec::new(),
        i64::MAX,
        &mut frame,
        &mut |bytes, _| sent = bytes.to_vec(),
        &mut || {},
    );
    assert_eq!(
        Outcome::from_byte(sent[wire::OUTCOME_AT]),
        Outcome::DecodeFailed
    );
}

#[test]
fn a_pointer_sized_capture_is_an_invalid_argument() {
    let base = std::hint::black_box(3u64);
    let f = move |x: u64| x + base;
    assert!(task_fn::<_, (u64,)>(&f).is_err());
}
