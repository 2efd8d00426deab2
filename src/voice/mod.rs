//! Voice: the protocols and pipeline pieces that connect speech engines to
//! clients. Today: the Wyoming protocol ([`wyoming`]) that Home Assistant's
//! voice satellites speak.

pub mod wyoming;
