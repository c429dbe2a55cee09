//! Durable storage engine (being written).
