fn main() {
    eprintln!("usage: cargo xtask bench");
}
