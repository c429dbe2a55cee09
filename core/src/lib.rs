pub mod entry;
pub mod persist;
pub mod types;
pub use entry::{Entry, EntryError, EntryType, RequestId, ENTRY_HEADER_LEN};
pub use persist::{HardState, Recovered, Write};
pub use types::{LogIndex, Now, PeerId, Term, Time, WriteId};
