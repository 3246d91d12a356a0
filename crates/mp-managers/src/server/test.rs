use super::*;

#[test]
fn first_ids_are_in_range() {
    let [objects, sessions] = random_ids();
    assert!((1..1 << 63).contains(&objects));
    assert!((1..1 << 31).contains(&sessions));
}
