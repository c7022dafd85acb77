fn main() {
    // Handlers and middleware extract `State<AppState>`.
    arbor_build::Builder::new()
        .state("crate::AppState")
        .compile()
        .unwrap_or_else(|error| error.exit());
}
