//! Delivery to real syslog receivers (rsyslog, syslog-ng) over every transport, framing and
//! output, across outages and kills; routing and filter rules; Splunk HEC (to the simulator).

mod fanout;
mod filtering;
mod hec;
mod json_output;
mod matrix;
mod outages;
mod routing;
mod rsyslog_tcp;
mod syslog_ng;
mod tls;
mod udp;
