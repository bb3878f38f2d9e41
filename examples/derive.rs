//! `#[derive(Persist)]` and a schema migration on a real file.
//!
//! Version 1 of a program kept its settings as `{ theme, font }`, with the font as one
//! string such as `"Fira Code 14"`. Version 2 splits it into a family and a size. This
//! example writes a version-1 file with the version-1 type, loads it with the version-2
//! type (which migrates it through `From`), saves it, and shows the file at each step.
//!
//! ```text
//! cargo run --example derive            # in a temporary directory
//! cargo run --example derive -- DIR     # in DIR, which is kept
//! ```

use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

/// The settings as version 1 of the program wrote them.
#[derive(Serialize, Deserialize, Debug, Persist)]
#[persist(path = "settings.toml", envelope = true, version = 1)]
struct SettingsV1 {
    theme: String,
    font: String,
}

/// The settings today: version 2, migrated from version 1.
#[derive(Serialize, Deserialize, Debug, Default, Persist)]
#[persist(
    path = "settings.toml",
    envelope = true,
    version = 2,
    migrate_from = SettingsV1
)]
struct Settings {
    theme: String,
    font_family: String,
    font_size: u32,
}

impl From<SettingsV1> for Settings {
    fn from(v1: SettingsV1) -> Settings {
        // "Fira Code 14" -> ("Fira Code", 14); a font without a size gets 12.
        let (family, size) = match v1.font.rsplit_once(' ') {
            Some((family, size)) if size.parse::<u32>().is_ok() => {
                (family.to_string(), size.parse().unwrap_or(12))
            }
            _ => (v1.font.clone(), 12),
        };
        Settings {
            theme: v1.theme,
            font_family: family,
            font_size: size,
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let temp;
    let dir = match std::env::args_os().nth(1) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            temp = tempfile::tempdir()?;
            temp.path().to_path_buf()
        }
    };
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(Settings::PATH);

    println!(
        "1. Version 1 of the program saves its settings to {}",
        path.display()
    );
    let v1 = SettingsV1 {
        theme: "dark".into(),
        font: "Fira Code 14".into(),
    };
    v1.save_to(&path)?;
    print!("{}", std::fs::read_to_string(&path)?);
    let meta = atomic_persist::envelope::verify(&path)?.expect("an enveloped file");
    println!("   -> schema version {} on disk\n", meta.schema_version);

    println!("2. Version 2 loads it: the payload is read as SettingsV1, then converted");
    let mut settings = Settings::load_from(&path)?;
    println!("   -> {settings:?}");
    let meta = atomic_persist::envelope::verify(&path)?.expect("an enveloped file");
    println!(
        "   -> the file is untouched until a save: still schema version {}\n",
        meta.schema_version
    );

    println!("3. Version 2 changes a setting and saves");
    settings.font_size += 1;
    settings.save_to(&path)?;
    print!("{}", std::fs::read_to_string(&path)?);
    let meta = atomic_persist::envelope::verify(&path)?.expect("an enveloped file");
    println!(
        "   -> schema version {}, generation {}\n",
        meta.schema_version, meta.generation
    );

    println!("4. Version 1 of the program, started again, refuses the newer file");
    match SettingsV1::load_from(&path) {
        Err(e @ atomic_persist::Error::SchemaVersion { .. }) => println!("   -> {e}"),
        other => return Err(format!("expected a SchemaVersion error, got {other:?}").into()),
    }
    Ok(())
}
