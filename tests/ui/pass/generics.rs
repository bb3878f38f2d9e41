//! Generic types: the impl requires what serde's derive requires.
use atomic_persist::Persist;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Default, Persist)]
#[persist(path = "queue.json", envelope = true)]
struct Queue<T> {
    items: Vec<T>,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "pair.json")]
struct Pair<A, B: Clone>
where
    A: Default,
{
    a: A,
    b: Vec<B>,
}

// A chain of generic types: a generic `migrate_from` is written with `::<>`, as in an
// expression (or as a string: `migrate_from = "BoxV1<T>"`).
#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "box.json", envelope = true, version = 1)]
struct BoxV1<T> {
    item: T,
}

#[derive(Serialize, Deserialize, Persist)]
#[persist(path = "box.json", envelope = true, version = 2, migrate_from = BoxV1::<T>)]
struct Box2<T> {
    items: Vec<T>,
}

impl<T> From<BoxV1<T>> for Box2<T> {
    fn from(v1: BoxV1<T>) -> Self {
        Box2 { items: vec![v1.item] }
    }
}

fn assert_persist<T: Persist>() {}

fn generic_use<T: Serialize + DeserializeOwned + Default>() -> atomic_persist::Result<Queue<T>> {
    Queue::<T>::load_or_default_from("/nonexistent/queue.json")
}

fn main() {
    assert_persist::<Queue<String>>();
    assert_persist::<Pair<u8, String>>();
    assert_persist::<Box2<u32>>();
    assert!(generic_use::<u8>().unwrap().items.is_empty());
}
