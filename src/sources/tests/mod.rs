//! Tests of the sources as a whole, in process against the simulator and a real spool: the
//! windowed pollers' exactly-once (`poll`), tokens that stay with their API (`links`), hostile
//! answers (`hostile`) and request budgets (`throttle`). Tests of one module stay beside it.

mod hostile;
mod links;
mod poll;
mod throttle;
