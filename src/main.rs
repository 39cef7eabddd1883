//! The `tg-ingest` binary: its command line is [`tg_ingest::cli`].

fn main() -> std::process::ExitCode {
    tg_ingest::cli::main()
}
