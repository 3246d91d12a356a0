//! `#[derive(Pod, Zeroable)]` through the facade, in a crate with no bytemuck dependency of its
//! own: in one line (issue #27, mp-derive), and with bytemuck's `#[bytemuck(crate = ...)]`
//! spelling that code written before mp-derive has (issue #15).

use mp::{Array, Pod, Value, Zeroable};

#[derive(Clone, Copy, Debug, PartialEq, Pod, Zeroable)]
#[bytemuck(crate = "mp::bytemuck")]
#[repr(C)]
struct Point {
    x: f64,
    y: f64,
}

/// The one-line form.
#[derive(Clone, Copy, Debug, PartialEq, mp::Pod, mp::Zeroable)]
#[repr(C)]
struct Sample {
    t: u64,
    v: f64,
}

fn bump(s: Value<Sample>) {
    s.update(|s| s.t += 1).unwrap();
}

fn shift(points: Array<Point>) {
    let mut guard = points.lock().unwrap();
    for p in guard.iter_mut() {
        p.x += 10.0;
    }
}

mp_spawn::test_matrix!(
    a_derived_pod_travels_to_a_child,
    a_pod_derived_in_one_line_travels_to_a_child
);

fn a_pod_derived_in_one_line_travels_to_a_child(m: mp::StartMethod) {
    let s = Value::new(Sample { t: 1, v: 0.5 }).unwrap();
    let mut p = mp::get_context(m).unwrap().process(bump, (s.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(s.value().unwrap(), Sample { t: 2, v: 0.5 });
}

fn a_derived_pod_travels_to_a_child(m: mp::StartMethod) {
    let points = Array::from_slice(&[Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: 4.0 }]).unwrap();
    let mut p = mp::get_context(m)
        .unwrap()
        .process(shift, (points.clone(),));
    p.start().unwrap();
    p.join().unwrap();
    assert_eq!(
        points.to_vec().unwrap(),
        [Point { x: 11.0, y: 2.0 }, Point { x: 13.0, y: 4.0 }]
    );
    let v = Value::new(Point { x: 0.5, y: 0.5 }).unwrap();
    assert_eq!(v.value().unwrap(), Point { x: 0.5, y: 0.5 });
}
