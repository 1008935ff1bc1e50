//! `truc`: the binary. Everything lives in the library; see `truc::cli`.

fn main() -> std::process::ExitCode {
    truc::cli::main()
}
