use mp_pool::Pool;
use mp_spawn::StartMethod;
use mp_spawn::testing::ctx;

fn square(x: u64) -> u64 { x * x }

fn basics(m: StartMethod) {
    let pool = Pool::builder().processes(2).context(ctx(m)).build().unwrap();
    assert_eq!(pool.map(square, [1, 2, 3]).unwrap(), [1, 4, 9]);
    let v: Vec<u64> = pool.imap(square, 0..).take(5).collect::<Result<_,_>>().unwrap();
    assert_eq!(v, [0,1,4,9,16]);
    assert_eq!(pool.apply(square, (7,)).unwrap(), 49);
    let big = pool.map(square, 0..200_000u64).unwrap();
    assert_eq!(big.len(), 200_000);
    assert_eq!(big[199_999], 199_999 * 199_999);
}
mp_spawn::test_matrix!(basics);
