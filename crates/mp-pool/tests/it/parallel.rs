//! joblib-style `Parallel`, once per start method.

use mp_pool::{Parallel, PoolError};
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

fn task(name: String, count: u64) -> (String, u128) {
    (name, (0..count as u128).map(|i| i * i).sum())
}

fn fails_on_2(x: u64) -> u64 {
    assert_ne!(x, 2, "two is not allowed");
    x
}

fn power(base: u64, exp: u32) -> u64 {
    base.pow(exp)
}

fn list_iter_unordered(m: StartMethod) {
    let par = Parallel::new(2).context(ctx(m));
    let calls = [("a".to_string(), 10), ("b".to_string(), 100)];
    assert_eq!(
        par.run(task, calls.clone()).unwrap(),
        [("a".to_string(), 285), ("b".to_string(), 328350)]
    );
    let ordered: Vec<u64> = par
        .iter(power, (0..20).map(|b| (b, 2)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ordered, (0..20).map(|b| b * b).collect::<Vec<_>>());
    let mut unordered: Vec<u64> = par
        .iter_unordered(power, (0..20).map(|b| (b, 3)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    unordered.sort_unstable();
    assert_eq!(unordered, (0..20).map(|b| b * b * b).collect::<Vec<_>>());
    // An endless batch, read lazily.
    let first: Vec<u64> = par
        .iter(power, (0..).map(|b| (b, 1)))
        .unwrap()
        .take(5)
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(first, [0, 1, 2, 3, 4]);
    match par.batch_size(1).run(fails_on_2, (0..5).map(|x| (x,))) {
        Err(PoolError::Panicked { index: 2, message }) => {
            assert!(message.contains("two is not allowed"))
        }
        other => panic!("{other:?}"),
    }
}

mp_spawn::test_matrix!(list_iter_unordered);

#[test]
fn n_jobs_follows_joblib() {
    let cpus = mp_spawn::process_cpu_count();
    assert_eq!(Parallel::new(-1).workers().unwrap(), cpus);
    assert_eq!(Parallel::new(-2).workers().unwrap(), (cpus - 1).max(1));
    assert_eq!(Parallel::new(-100).workers().unwrap(), 1);
    assert_eq!(Parallel::new(3).workers().unwrap(), 3);
    assert!(matches!(
        Parallel::new(0).workers(),
        Err(PoolError::InvalidArgument(_))
    ));
    // n_jobs=1 is a plain loop in this process.
    assert_eq!(Parallel::new(1).run(power, [(2, 10)]).unwrap(), [1024]);
    assert!(matches!(
        Parallel::new(1).run(fails_on_2, [(1,), (2,)]),
        Err(PoolError::Panicked { index: 1, .. })
    ));
}
