arbor::middleware!();

fn main() {}
