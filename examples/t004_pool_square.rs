//! Post 004, `Pool(5)`: `p.map(square, [1, 2, 3])` prints `[1, 4, 9]`. The post's `with`
//! block terminates the pool at its end; here the pool is dropped at the end of `main`, which
//! does the same.
fn square(x: u64) -> u64 {
    x * x
}

fn main() -> Result<(), mp::PoolError> {
    let p = mp::Pool::new(5)?;
    println!("{:?}", p.map(square, [1, 2, 3])?);
    Ok(())
}
