use super::*;

fn square(x: u64) -> u64 {
    x * x
}

fn chunk_offset_of<F>(_: F) -> i64
where
    F: Target<(u64,)> + Copy,
    F::Output: Serialize,
{
    entry_offset::<F, (u64,)>()
}

fn init_offset_of<F: Target<(u64,)> + Copy>(_: F) -> i64 {
    init_offset::<F, (u64,)>()
}

#[test]
fn an_offset_names_its_entry_and_nothing_else_is_an_entry() {
    let chunk = chunk_offset_of(square);
    let init = init_offset_of(square);
    assert!(entry_at(chunk).is_some());
    assert!(init_entry_at(init).is_some());
    // An entry of the other kind, code outside the sections, the placeholders and wild
    // offsets are refused: a corrupt frame cannot send a worker anywhere.
    assert!(entry_at(init).is_none());
    assert!(init_entry_at(chunk).is_none());
    assert!(entry_at(chunk_entries().offset(no_chunk)).is_none());
    assert!(init_entry_at(init_entries().offset(no_init)).is_none());
    let elsewhere = chunk_entries().offset(no_chunk) + (1 << 30);
    for wild in [0, i64::MIN, i64::MAX, elsewhere, -elsewhere] {
        assert!(entry_at(wild).is_none(), "{wild}");
        assert!(init_entry_at(wild).is_none(), "{wild}");
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
    entry(&args, Vec::new(), &mut frame, &mut |bytes, _| {
        sent = bytes.to_vec()
    });
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
