//! Two terminals on one settings file: one changes it, the other prints each change as
//! it lands.
//!
//! ```sh
//! cargo run --example watch --features watch -- print settings.json      # terminal 1
//! cargo run --example watch --features watch -- set settings.json theme dark  # terminal 2
//! ```
//!
//! `print` shows the current settings, then every commit (its generation and value), a
//! removal, or a damaged file, until interrupted. `set` commits one key.

use std::collections::BTreeMap;

use atomic_persist::Persisted;
use atomic_persist::watch::Update;

type Settings = BTreeMap<String, String>;

fn open(path: &str) -> atomic_persist::Result<Persisted<Settings>> {
    Persisted::<Settings>::builder(path)
        .envelope(true)
        .open_or_default()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["print", path] => print(path),
        ["set", path, key, value] => {
            let mut settings = open(path)?;
            settings.update(|s| {
                s.insert(key.to_owned(), value.to_owned());
            })?;
            let generation = settings.meta().map_or(0, |m| m.generation);
            println!("committed generation {generation}");
            Ok(())
        }
        _ => Err("usage: watch print FILE | watch set FILE KEY VALUE".into()),
    }
}

fn print(path: &str) -> Result<(), Box<dyn std::error::Error>> {
    let settings = open(path)?;
    println!("now: {:?}", settings.get());
    for update in settings.watch()? {
        match update {
            Ok(Update::Changed { value, meta }) => {
                let generation = meta.map_or(0, |m| m.generation);
                println!("generation {generation}: {value:?}");
            }
            Ok(Update::Removed) => println!("removed"),
            Ok(other) => println!("{other:?}"),
            Err(e) => println!("not a value: {e}"),
        }
    }
    Ok(())
}
