pub struct Parallel; pub enum ReturnAs {}
