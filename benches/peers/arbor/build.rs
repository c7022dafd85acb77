fn main() {
    arbor_build::compile();
}
