//! A format of your own: MessagePack (through `rmp-serde`) as a `CustomFormat`, used for
//! an enveloped job state with a history behind it.
//!
//! ```sh
//! cargo run --example custom_format [DIR]
//! ```
//!
//! Each run commits the next step; the envelope's generation counts the runs, and the
//! history keeps the last three.

use std::io::Write;

use atomic_persist::{BoxError, CustomFormat, History};
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};

/// MessagePack with field names, so that fields can be added later.
struct MessagePack;

impl CustomFormat for MessagePack {
    fn name(&self) -> &'static str {
        "msgpack"
    }

    fn serialize<T: Serialize + ?Sized, W: Write>(
        &self,
        value: &T,
        mut out: W,
    ) -> Result<(), BoxError> {
        Ok(value.serialize(&mut rmp_serde::Serializer::new(&mut out).with_struct_map())?)
    }

    fn deserialize<'de, S: DeserializeSeed<'de>>(
        &self,
        bytes: &'de [u8],
        seed: S,
    ) -> Result<S::Value, BoxError> {
        Ok(seed.deserialize(&mut rmp_serde::Deserializer::from_read_ref(bytes))?)
    }
}

#[derive(Serialize, Deserialize, Debug, Default)]
struct Job {
    step: u64,
    done: Vec<String>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "target/custom-format".into());
    std::fs::create_dir_all(&dir)?;
    let mut job = History::<Job>::builder(std::path::Path::new(&dir).join("job.msgpack"))
        .format(&MessagePack)
        .keep(3)
        .open_or_default()?;
    job.update(|j| {
        j.step += 1;
        j.done.push(format!("step {}", j.step));
    })?;
    println!(
        "step {} committed; generation {}",
        job.get().step,
        job.generation()
    );
    for v in job.versions()? {
        println!("  version {} written {}", v.generation, v.written_at);
    }
    Ok(())
}
