//! An application's settings in a TOML file: opened with defaults when missing, changed
//! with `update` (an atomic save), printed. Comments you add to the file survive.
//!
//! ```sh
//! cargo run --example config                # uses a file in the system temp directory
//! cargo run --example config -- my.toml     # or your own file
//! ```

use std::path::PathBuf;

use atomic_persist::Persisted;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Debug)]
#[serde(default)]
struct Settings {
    /// Shown in the window title.
    title: String,
    /// 0 to 10.
    volume: u8,
    /// How many times the app started.
    launches: u64,
    window: Window,
}

#[derive(Serialize, Deserialize, Debug)]
#[serde(default)]
struct Window {
    width: u32,
    height: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            title: "My App".into(),
            volume: 5,
            launches: 0,
            window: Window::default(),
        }
    }
}

impl Default for Window {
    fn default() -> Self {
        Window {
            width: 800,
            height: 600,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("atomic-persist-example-config.toml"));
    let existed = path.exists();

    let mut settings = Persisted::<Settings>::builder(&path)
        .validate(|s| {
            if s.volume <= 10 {
                Ok(())
            } else {
                Err(format!("volume {} is above 10", s.volume))
            }
        })
        .open_or_default()?;
    if existed {
        println!("Loaded {}", path.display());
    } else {
        println!(
            "No settings at {}: starting from the defaults",
            path.display()
        );
    }

    // Change the value and save it atomically in one step.
    let launches = settings.update(|s| {
        s.launches += 1;
        s.launches
    })?;
    println!("This is launch number {launches}; saved.");

    // The validate hook refuses a bad value; the file keeps the last good one.
    match settings.update(|s| s.volume = 11) {
        Err(e) => println!("Refused: {e}"),
        Ok(()) => unreachable!("volume 11 fails validation"),
    }
    settings.reload()?; // back to what is on disk

    println!("\nIn memory: {:?}", *settings);
    println!("\n--- {} ---", path.display());
    print!("{}", std::fs::read_to_string(&path)?);
    println!("---");
    println!("Add a # comment to that file and run again: the save keeps it.");
    Ok(())
}
