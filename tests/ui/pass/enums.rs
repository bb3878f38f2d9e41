//! Enums, unit structs and tuple structs.
use atomic_persist::Persist;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "mode.json", envelope = true, version = 1)]
enum Mode {
    Off,
    Every { minutes: u32 },
    Cron(String),
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "marker.json")]
struct Marker;

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "pair.json", durability = "data")]
struct Pair(u32, String);

fn main() {
    assert_eq!(Mode::VERSION, 1);
    assert_eq!(Marker::PATH, "marker.json");
    assert_eq!(Pair::DURABILITY, atomic_persist::Durability::Data);
}
