//! The reader's data-driven tests: a log in, its frames (as `candump -l` lines) and counts
//! out, through the same bounded line reading the commands use.

use proptest::prelude::*;

use super::*;
use crate::frame::candump::format_line;

const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/");

/// Reads `log` as the commands do; returns its frames as `candump -l` lines, its counts,
/// and the error if the file cannot be read.
fn read(log: &[u8]) -> (Vec<String>, LogCounts, Option<LogError>) {
    let mut reader = LogReader::new("test.log");
    let mut input = std::io::BufReader::with_capacity(64, log);
    let mut lines = LineSplitter::new();
    let mut frames = Vec::new();
    loop {
        let piece = next_line(&mut input, &mut lines).unwrap();
        let Some(piece) = piece else { break };
        match reader.piece(piece) {
            Ok(frame) => frames.extend(frame),
            Err(e) => return (fmt(&frames), reader.counts().clone(), Some(e)),
        }
    }
    frames.extend(reader.finish());
    let error = reader.no_frames();
    (fmt(&frames), reader.counts().clone(), error)
}

fn fmt(frames: &[CanFrame]) -> Vec<String> {
    frames.iter().map(format_line).collect()
}

fn counts(form: Form, frames: u64) -> LogCounts {
    LogCounts {
        form: Some(form),
        frames,
        ..LogCounts::default()
    }
}

/// The frames every fixture below holds, as candump -l writes them.
const FRAMES: [&str; 3] = [
    "(1635188455.004000) can0 18FEEE00#6F3F392BFFFFFFFF",
    "(1635188455.005000) can1 123#01FF",
    "(1635188455.006000) can0 0CF00400#",
];

#[test]
fn every_form_gives_the_same_frames() {
    let cases: [(&str, &str, Form); 6] = [
        (
            "candump -l",
            "(1635188455.004000) can0 18FEEE00#6F3F392BFFFFFFFF\n(1635188455.005000) can1 123#01FF\n(1635188455.006000) can0 0CF00400#\n",
            Form::CandumpLog,
        ),
        (
            "candump -l, lower case, CRLF",
            "(1635188455.004000) can0 18feee00#6f3f392bffffffff\r\n(1635188455.005000) can1 123#01ff\r\n(1635188455.006000) can0 0cf00400#\r\n",
            Form::CandumpLog,
        ),
        (
            "candump -ta",
            " (1635188455.004000)  can0  18FEEE00   [8]  6F 3F 39 2B FF FF FF FF\n (1635188455.005000)  can1  123   [2]  01 FF\n (1635188455.006000)  can0  0CF00400   [0] \n",
            Form::CandumpPrinted,
        ),
        (
            "candump -tA",
            " (2021-10-25 19:00:55.004000)  can0  18FEEE00   [8]  6F 3F 39 2B FF FF FF FF\n (2021-10-25 19:00:55.005000)  can1  123   [2]  01 FF\n (2021-10-25 19:00:55.006000)  can0  0CF00400   [0]\n",
            Form::CandumpPrinted,
        ),
        (
            "Vector ASC",
            "date Mon Oct 25 07:00:55.000 pm 2021\nbase hex  timestamps absolute\ninternal events logged\n// version 13.0.0\nBegin Triggerblock Mon Oct 25 07:00:55.000 pm 2021\n   0.000000 Start of measurement\n   0.004000 1  18FEEE00x       Rx   d 8 6F 3F 39 2B FF FF FF FF  Length = 272000 BitCount = 141 ID = 419360256x\n   0.005000 2  123             Rx   d 2 01 FF\n   0.006000 1  CF00400x        Rx   d 0\nEnd TriggerBlock\n",
            Form::VectorAsc,
        ),
        (
            "Vector ASC, relative",
            "date Mon Oct 25 19:00:55 2021\nbase hex  timestamps relative\n   0.004000 1  18FEEE00x Rx d 8 6F 3F 39 2B FF FF FF FF\n   0.001000 2  123 Rx d 2 01 FF\n   0.001000 1  CF00400x Rx d 0\n",
            Form::VectorAsc,
        ),
    ];
    for (name, log, form) in cases {
        let (frames, got, error) = read(log.as_bytes());
        assert_eq!(frames, FRAMES, "{name}");
        assert_eq!(got.form, Some(form), "{name}");
        assert_eq!((got.frames, got.skipped(), error), (3, 0, None), "{name}");
    }
}

#[test]
fn a_saleae_export_in_either_column_order_and_either_time() {
    let seconds = "name,type,start_time,duration,\"identifier\",\"extended\",\"num_data_bytes\",\"data\",\"crc\",\"ack\"\n\
        \"CAN\",\"identifier_field\",0.004,0.00014,0x0000000018FEEE00,true,,,,\n\
        \"CAN\",\"control_field\",0.0041,1.2e-05,,,0x0000000000000002,,,\n\
        \"CAN\",\"data_field\",0.0042,3.2e-05,,,,0x6F,,\n\
        \"CAN\",\"data_field\",0.0043,3.2e-05,,,,0x3F,,\n\
        \"CAN\",\"crc_field\",0.0044,6.4e-05,,,,,0x0000000000005A00,\n\
        \"CAN\",\"ack_field\",0.0045,4e-06,,,,,,true\n\
        \"CAN\",\"identifier_field\",0.005,0.00014,0x0000000000000123,false,,,,\n\
        \"CAN\",\"control_field\",0.0051,1.2e-05,,,0x0000000000000000,,,\n";
    let (frames, got, error) = read(seconds.as_bytes());
    assert_eq!(
        frames,
        ["(0.004000) can0 18FEEE00#6F3F", "(0.005000) can0 123#"]
    );
    let expected = LogCounts {
        lines: 9,
        ..counts(Form::SaleaeCsv, 2)
    };
    assert_eq!((got, error), (expected, None));
    let iso = "name,type,start_time,duration,\"identifier\",\"num_data_bytes\",\"extended\",\"data\",\"crc\",\"ack\"\n\
        \"CAN\",\"identifier_field\",2023-08-25T05:27:11.752721116+00:00,0.000144,0x000000000CF00400,,true,,,\n\
        \"CAN\",\"control_field\",2023-08-25T05:27:11.752869116+00:00,1.2e-05,,0x0000000000000001,,,,\n\
        \"CAN\",\"data_field\",2023-08-25T05:27:11.752885116+00:00,3.2e-05,,,,0xFE,,\n";
    let (frames, got, _) = read(iso.as_bytes());
    assert_eq!(frames, ["(1692941231.752721) can0 0CF00400#FE"]);
    assert_eq!(got.frames, 1);
    // The same export saved with a byte-order mark.
    let (bom, _, _) = read(&[&b"\xEF\xBB\xBF"[..], iso.as_bytes()].concat());
    assert_eq!(bom, frames);
}

/// Two excerpts of SystemsCyber/Truck_Sentry's Saleae exports (MIT; tests/data/README.md):
/// the frames a `can_error` broke off are bus errors, every other frame is read whole.
#[test]
fn the_truck_sentry_captures_read_whole_frames_and_count_the_broken_ones() {
    for (file, frames, broken, first, last) in [
        (
            "j1939-truck-sentry-dos.saleae.csv",
            31,
            4,
            "(3.039429) can0 18FEF500#",
            "(3.088165) can0 18F00131#FFFFFF3FFAFFFFFF",
        ),
        (
            "j1939-truck-sentry-connection-exhaustion.saleae.csv",
            30,
            12,
            "(1692941236.",
            "(1692941236.121416) can0 08FE6E0B#",
        ),
    ] {
        let log = std::fs::read(format!("{DATA}{file}")).unwrap();
        let (got, c, error) = read(&log);
        assert_eq!(
            (c.frames, c.bus_errors, c.skipped(), error),
            (frames, broken, broken, None),
            "{file}"
        );
        assert!(got[0].starts_with(first), "{file}: {}", got[0]);
        assert!(
            got.last().unwrap().starts_with(last),
            "{file}: {}",
            got.last().unwrap()
        );
        // Only whole frames: 8 bytes each, as every frame of these captures has.
        assert!(
            got.iter().all(|f| f.split('#').nth(1).unwrap().len() == 16),
            "{file}"
        );
    }
}

#[test]
fn can_fd_frames_are_read_and_counted_and_over_8_bytes_skipped() {
    let log = "(1.000000) can0 18FEEE00#6F3F392BFFFFFFFF\n\
               (1.001000) can0 18FEEE00##16F3F392BFFFFFFFF\n\
               (1.002000) can0 18FEEE00##100112233445566778899AABB\n\
               (1.003000) can0 18FEEE00#703F392BFFFFFFFF\n";
    let (frames, c, _) = read(log.as_bytes());
    assert_eq!(
        frames,
        [
            "(1.000000) can0 18FEEE00#6F3F392BFFFFFFFF",
            "(1.001000) can0 18FEEE00#6F3F392BFFFFFFFF",
            "(1.003000) can0 18FEEE00#703F392BFFFFFFFF"
        ]
    );
    assert_eq!((c.frames, c.fd_frames, c.unsupported), (3, 2, 1));
    let printed = format!(
        " (1.000000)  can0  123  [12]  {}\n (1.000000)  can0  123  [08]  {}\n",
        ["AA"; 12].join(" "),
        ["BB"; 8].join(" ")
    );
    let (frames, c, _) = read(printed.as_bytes());
    assert_eq!(frames, ["(1.000000) can0 123#BBBBBBBBBBBBBBBB"]);
    assert_eq!(
        (c.form, c.fd_frames, c.unsupported),
        (Some(Form::CandumpPrinted), 2, 1)
    );
}

/// The clean log with one bad line put after its first frame; what it must count.
fn with_bad_line(bad: &[u8]) -> (Vec<String>, LogCounts) {
    let mut log = Vec::new();
    for (i, frame) in FRAMES.iter().enumerate() {
        log.extend_from_slice(frame.as_bytes());
        log.push(b'\n');
        if i == 0 {
            log.extend_from_slice(bad);
            log.push(b'\n');
        }
    }
    let (frames, counts, error) = read(&log);
    assert_eq!(error, None);
    (frames, counts)
}

#[test]
fn each_bad_line_is_skipped_and_counted_and_nothing_else_is_lost() {
    let long = [
        b"(1635188455.004500) can0 18FEEE00#".to_vec(),
        vec![b'A'; 200_000],
    ]
    .concat();
    // A bad line, and the counter it must land in.
    type Case = (&'static str, Vec<u8>, fn(&LogCounts) -> u64);
    let cases: [Case; 7] = [
        ("too long", long, |c| c.too_long),
        (
            "bad UTF-8",
            b"(1635188455.004500) can0 18FEEE00#\xFF\xFE".to_vec(),
            |c| c.bad_bytes,
        ),
        (
            "malformed",
            b"(1635188455.004500) can0 18FEEE00#6F3".to_vec(),
            |c| c.malformed,
        ),
        ("garbage", b"\x00\x01 hello".to_vec(), |c| c.malformed),
        (
            "printed form in a -l log",
            b"(1635188455.004500) can0 123 [1] 01".to_vec(),
            |c| c.malformed,
        ),
        ("remote", b"(1635188455.004500) can0 123#R".to_vec(), |c| {
            c.unsupported
        }),
        (
            "error frame",
            b"(1635188455.004500) can0 20000080#0000000000000000".to_vec(),
            |c| c.bus_errors,
        ),
    ];
    for (name, bad, cause) in cases {
        let (frames, c) = with_bad_line(&bad);
        assert_eq!(frames, FRAMES, "{name}");
        assert_eq!(
            (c.lines, c.frames, c.skipped(), cause(&c)),
            (4, 3, 1, 1),
            "{name}"
        );
    }
}

#[test]
fn a_garbage_first_line_does_not_stop_the_form_from_being_found() {
    let (frames, c) = {
        let log = format!(
            "not a log line\n{}\n{}\n{}\n",
            FRAMES[0], FRAMES[1], FRAMES[2]
        );
        let (f, c, _) = read(log.as_bytes());
        (f, c)
    };
    assert_eq!(
        (frames.len(), c.form, c.malformed),
        (3, Some(Form::CandumpLog), 1)
    );
}

#[test]
fn binary_forms_are_refused_naming_the_conversion() {
    for (start, container, tool) in [
        (
            &b"LOGG\x90\x00\x00\x00\x01\x02"[..],
            "Vector BLF",
            "can.logconvert",
        ),
        (b"MDF     4.11    ", "MF4", "asammdf"),
        (
            b";$FILEVERSION=2.0\n;$STARTTIME=0",
            "PCAN TRC",
            "can.logconvert",
        ),
    ] {
        let (frames, _, error) = read(start);
        let message = error.expect("refused").to_string();
        assert!(frames.is_empty());
        assert!(
            message.contains(container) && message.contains(tool),
            "{message}"
        );
    }
    // A BLF file whose first "line" is over the bound is still recognised.
    let blf = [b"LOGG".to_vec(), vec![0u8; 4096]].concat();
    assert!(matches!(read(&blf).2, Some(LogError::Container { .. })));
}

#[test]
fn a_file_without_frames_names_the_forms_read() {
    for log in [
        &b""[..],
        b"\n\n",
        b"hello\nworld\n",
        b"(1.000000) can0 123#R\n",
    ] {
        let (_, c, error) = read(log);
        let message = error.expect("no frames is an error").to_string();
        assert!(message.contains("holds no CAN frame"), "{message}");
        assert!(message.contains(FORMS_READ), "{message}");
        assert_eq!(c.frames, 0);
    }
}

#[test]
fn the_real_log_reads_alike_in_every_form_it_converts_to() {
    let text = std::fs::read_to_string(format!("{DATA}j1939-truck-css.candump.log")).unwrap();
    let (clean, c, _) = read(text.as_bytes());
    assert_eq!((c.frames, c.skipped()), (57_849, 0));
    assert_eq!(
        clean,
        text.lines().collect::<Vec<_>>(),
        "read and written back unchanged"
    );
    let (printed, asc) = convert(&text);
    for (form, log) in [(Form::CandumpPrinted, printed), (Form::VectorAsc, asc)] {
        let (frames, c, _) = read(log.as_bytes());
        assert_eq!((c.form, c.frames, c.skipped()), (Some(form), 57_849, 0));
        assert_eq!(frames, clean, "{form}");
    }
}

/// The real log in candump's printed form (`-ta`) and in Vector ASC, as those tools write
/// them (the bus `can1` is ASC channel 2).
pub(crate) fn convert(candump: &str) -> (String, String) {
    use std::fmt::Write;
    let mut printed = String::new();
    let first: i64 = candump[1..].split('.').next().unwrap().parse().unwrap();
    let mut asc = String::from(
        "date Mon Oct 25 07:00:55.000 pm 2021\nbase hex  timestamps absolute\ninternal events logged\n",
    );
    assert_eq!(first, 1_635_188_455, "the date line above is this second");
    for line in candump.lines() {
        let (stamp, rest) = line.split_once(") ").unwrap();
        let (bus, frame) = rest.split_once(' ').unwrap();
        let (id, data) = frame.split_once('#').unwrap();
        let bytes: Vec<&str> = (0..data.len())
            .step_by(2)
            .map(|i| &data[i..i + 2])
            .collect();
        let _ = writeln!(
            printed,
            " {stamp})  {bus}  {id}   [{}]  {}",
            bytes.len(),
            bytes.join(" ")
        );
        let (secs, micros) = stamp[1..].split_once('.').unwrap();
        let offset = secs.parse::<i64>().unwrap() - first;
        let channel = bus.trim_start_matches("can").parse::<u32>().unwrap() + 1;
        let digits = match id.trim_start_matches('0') {
            "" => "0",
            digits => digits,
        };
        let id = match id.len() {
            8 => format!("{digits}x"),
            _ => digits.to_owned(),
        };
        let _ = writeln!(
            asc,
            "   {offset}.{micros} {channel}  {id:<15} Rx   d {} {}",
            bytes.len(),
            bytes.join(" ")
        );
    }
    (printed, asc)
}

proptest! {
    #[test]
    fn no_input_panics_whatever_its_form(
        header in prop::sample::select(vec![
            "",
            "(1.000000) can0 123#00\n",
            " (000.000000)  can0  123   [1]  00\n",
            "date Mon Oct 25 07:00:55.000 pm 2021\nbase hex  timestamps absolute\n",
            "name,type,start_time,duration,\"identifier\",\"extended\",\"num_data_bytes\",\"data\",\"crc\",\"ack\"\n",
        ]),
        body in prop::collection::vec(any::<u8>(), 0..2000),
        lines in prop::collection::vec(
            r#"[ (),.#:"0-9A-Fa-fxXdRr\[\]_-]{0,80}|"CAN","(identifier|control|data|can_error)_field",[0-9.eT:+-]{0,30},,0x[0-9A-F]{0,16},(true|false)?,0x[0-9A-F]{0,16},0x[0-9A-F]{0,4},,"#,
            0..40
        ),
    ) {
        let mut log = header.as_bytes().to_vec();
        for line in &lines {
            log.extend_from_slice(line.as_bytes());
            log.push(b'\n');
        }
        log.extend_from_slice(&body);
        let (frames, counts, _) = read(&log);
        prop_assert_eq!(counts.frames as usize, frames.len());
        prop_assert!(counts.frames <= counts.lines);
    }
}

/// The frames a Saleae capture's `can_error` broke off reach the decoder as bus errors, with
/// the identifier they started with, for the intrusion monitor: the DoS excerpt's four are
/// the attacker's identifier 0.
#[test]
fn broken_off_frames_are_handed_on_as_bus_errors_with_their_identifier() {
    use crate::frame::Input;
    use crate::frame::recording::Recording;

    let log = std::fs::read(format!("{DATA}j1939-truck-sentry-dos.saleae.csv")).unwrap();
    let mut recording = Recording::new("dos", &[]);
    let mut inputs = Vec::new();
    for line in log.split(|&b| b == b'\n') {
        recording.line(line, &mut inputs).unwrap();
    }
    recording.finish(&mut inputs).unwrap();
    let errors: Vec<_> = inputs
        .iter()
        .filter_map(|i| match i {
            Input::BusError(e) => Some((e.id, &*e.bus)),
            _ => None,
        })
        .collect();
    assert_eq!(errors, vec![(Some((0, true)), "can0"); 4]);
    // In time order with the frames around them.
    let times: Vec<_> = inputs.iter().filter_map(Input::mono).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
}

#[test]
fn interleaved_buses_share_their_names() {
    let mut reader = LogReader::new("test.log");
    let mut frames = Vec::new();
    for i in 0..40 {
        let line = format!("(1.{i:06}) can{} 18FEEE00#6F3F392BFFFFFFFF", i % 4);
        frames.extend(reader.line(line.as_bytes()).unwrap());
    }
    assert_eq!(frames.len(), 40);
    for (i, frame) in frames.iter().enumerate().skip(4) {
        let first = &frames[i % 4];
        assert_eq!(*frame.bus, *first.bus);
        // One name per bus, not one allocation per frame.
        assert!(Arc::ptr_eq(&frame.bus, &first.bus), "frame {i}");
    }
}
