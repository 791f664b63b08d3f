//! A server-sent events reader for recorded bodies: splits the captured bytes into events
//! (`event:` and `data:` fields, blank-line separated, any line ending), as the SSE spec says.

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Event {
    /// The `event:` field, empty when absent.
    pub event: String,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// Parses a whole (possibly cut-off) event stream. An unterminated last event is kept, since a
/// cancelled stream's last complete line is still information.
pub(crate) fn parse(body: &str) -> Vec<Event> {
    let mut events = Vec::new();
    let mut current = Event::default();
    let mut has_data = false;
    // A line ends at `\r\n`, `\n` or a lone `\r`; read in place, without a copy of the body.
    let lines = body
        .split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'));
    for line in lines {
        if line.is_empty() {
            if has_data {
                events.push(std::mem::take(&mut current));
            }
            current = Event::default();
            has_data = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => current.event = value.to_string(),
            "data" => {
                if has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    if has_data {
        events.push(current);
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_and_line_endings() {
        let body = "event: a\r\ndata: {\"x\":1}\r\n\r\n: comment\ndata: one\ndata: two\n\ndata: [DONE]\n\n";
        let e = parse(body);
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].event, "a");
        assert_eq!(e[0].data, "{\"x\":1}");
        assert_eq!(e[1].data, "one\ntwo");
        assert_eq!(e[2].data, "[DONE]");
    }

    #[test]
    fn a_lone_carriage_return_ends_a_line() {
        let e = parse("event: a\rdata: 1\r\rdata: 2\r\n\r\ndata: 3\n\n");
        assert_eq!(e.len(), 3);
        assert_eq!((e[0].event.as_str(), e[0].data.as_str()), ("a", "1"));
        assert_eq!(e[1].data, "2");
        assert_eq!(e[2].data, "3");
    }

    #[test]
    fn cut_off_stream_keeps_the_last_event() {
        let e = parse("data: 1\n\ndata: 2");
        assert_eq!(e.len(), 2);
        assert_eq!(e[1].data, "2");
    }
}
