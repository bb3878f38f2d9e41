//! The `atomic-persist` command-line tool.

fn main() {
    eprintln!("atomic-persist: no subcommands yet");
    std::process::exit(1);
}
