//! Manifest streams: reading YAML/JSON documents from files, folders and stdin, writing them back,
//! and the KRM `ResourceList` envelope.

pub mod document;
pub mod input;
pub mod numbers;
pub mod output;
pub mod resource_list;

pub use document::{parse_stream, Document};
pub use output::OutputDoc;
