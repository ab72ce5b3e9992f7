//! The node end to end on mocks: SPI traffic in, frames out, decoded by the agent's decoder.

use embedded_hal::spi::{ErrorKind, ErrorType, Operation, SpiDevice};
use embedded_hal_mock::eh1::delay::{CheckedDelay, NoopDelay, Transaction as Delay};
use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as T};
use max31865::{Config, ConversionMode, Filter, Max31865};
use vigil_node::{Clock, FAULT_NO_ANSWER, FAULT_UNEXPLAINED, FIRMWARE_VERSION, Node};
use vigil_wire::{Body, FrameDecoder, FrameError, Message};

/// Starts at `start` and advances 1 ms per reading, so each message's `node_ms` shows when
/// in the step it was taken.
struct TickingClock(u32);

impl Clock for TickingClock {
    fn now_ms(&mut self) -> u32 {
        let now = self.0;
        self.0 = self.0.wrapping_add(1);
        now
    }
}

fn write(bytes: &[u8]) -> Vec<T<u8>> {
    vec![
        T::transaction_start(),
        T::write_vec(bytes.to_vec()),
        T::transaction_end(),
    ]
}

fn read(address: u8, response: &[u8]) -> Vec<T<u8>> {
    vec![
        T::transaction_start(),
        T::write_vec(vec![address]),
        T::read_vec(response.to_vec()),
        T::transaction_end(),
    ]
}

/// An RTD data read returning `code` with the fault flag set or not.
fn rtd(code: u16, fault: bool) -> Vec<T<u8>> {
    read(0x01, &((code << 1) | u16::from(fault)).to_be_bytes())
}

/// What `configure` sends with `Config::default()`.
fn configure_default() -> Vec<T<u8>> {
    [
        write(&[0x80, 0x80]),
        write(&[0x83, 0xFF, 0xFF, 0x00, 0x00]),
        write(&[0x80, 0xC2]),
    ]
    .concat()
}

fn probe(config: Config, expectations: &[Vec<T<u8>>]) -> Max31865<SpiMock<u8>> {
    Max31865::new(SpiMock::new(&expectations.concat()), config)
}

fn decode(bytes: &[u8]) -> (Vec<Message>, Vec<FrameError>) {
    let mut decoder = FrameDecoder::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    for &byte in bytes {
        match decoder.push(byte) {
            Some(Ok(message)) => good.push(message),
            Some(Err(error)) => bad.push(error),
            None => {}
        }
    }
    (good, bad)
}

fn tank(seq: u16, node_ms: u32, channel: u8, fault: u8, milli_c: i32) -> Message {
    Message {
        seq,
        node_ms,
        body: Body::TankTemperature {
            channel,
            fault,
            milli_c,
        },
    }
}

fn heartbeat(seq: u16, node_ms: u32, channels: u8) -> Message {
    Message {
        seq,
        node_ms,
        body: Body::Heartbeat {
            channels,
            firmware: FIRMWARE_VERSION,
        },
    }
}

fn finish<CLOCK, const N: usize>(node: Node<SpiMock<u8>, Vec<u8>, CLOCK, N>) -> Vec<u8>
where
    CLOCK: Clock,
{
    let (probes, uart, _) = node.destroy();
    for probe in probes {
        probe.destroy().done();
    }
    uart
}

#[test]
fn good_readings_become_frames_the_agent_decodes() {
    // Codes 7620, 8362 and 9076 on a 430 ohm reference: 99.994, 109.731 and 119.100 ohm,
    // i.e. -0.016, 24.990 and 49.229 degC.
    let probes = [
        probe(Config::default(), &[rtd(7620, false)]),
        probe(Config::default(), &[rtd(8362, false)]),
        probe(Config::default(), &[rtd(9076, false)]),
    ];
    let mut node = Node::new(probes, Vec::new(), TickingClock(5_000));
    node.step(&mut NoopDelay::new()).unwrap();
    let (good, bad) = decode(&finish(node));
    assert_eq!(bad, []);
    assert_eq!(
        good,
        [
            heartbeat(0, 5_000, 3),
            tank(1, 5_001, 1, 0, -16),
            tank(2, 5_002, 2, 0, 24_990),
            tank(3, 5_003, 3, 0, 49_229),
        ]
    );
}

#[test]
fn a_fault_is_reported_with_its_register_then_cleared_and_the_channel_recovers() {
    let probes = [
        probe(
            Config::default(),
            &[
                // First step: flag set, status says RTD high threshold (open RTD), clear.
                rtd(0x7FFF, true),
                read(0x07, &[0x80]),
                write(&[0x80, 0xC2]),
                // Second step: good again.
                rtd(8362, false),
            ],
        ),
        probe(Config::default(), &[rtd(9076, false), rtd(9076, false)]),
    ];
    let mut node = Node::new(probes, Vec::new(), TickingClock(0));
    node.step(&mut NoopDelay::new()).unwrap();
    node.step(&mut NoopDelay::new()).unwrap();
    let (good, bad) = decode(&finish(node));
    assert_eq!(bad, []);
    assert_eq!(
        good,
        [
            heartbeat(0, 0, 2),
            tank(1, 1, 1, 0x80, 0),
            tank(2, 2, 2, 0, 49_229),
            // No heartbeat: 10 s have not passed.
            tank(3, 4, 1, 0, 24_990),
            tank(4, 5, 2, 0, 49_229),
        ]
    );
}

#[test]
fn a_heartbeat_goes_out_again_after_ten_seconds() {
    let probes = [probe(
        Config::default(),
        &[rtd(8362, false), rtd(8362, false)],
    )];
    let mut node = Node::new(probes, Vec::new(), TickingClock(100));
    node.step(&mut NoopDelay::new()).unwrap();
    let (probes, uart, mut clock) = node.destroy();
    clock.0 += 10_000;
    let mut node = Node::new(probes, uart, clock);
    node.step(&mut NoopDelay::new()).unwrap();
    let (good, _) = decode(&finish(node));
    // The rebuilt node numbers from 0 again, as a rebooted node would.
    assert_eq!(
        good,
        [
            heartbeat(0, 100, 1),
            tank(1, 101, 1, 0, 24_990),
            heartbeat(0, 10_102, 1),
            tank(1, 10_103, 1, 0, 24_990),
        ]
    );
}

#[test]
fn a_converter_that_reads_nothing_is_no_answer_and_gets_reconfigured() {
    let probes = [probe(
        Config::default(),
        &[
            // MISO held low: code 0 without the flag, which a real chip never sends.
            rtd(0, false),
            configure_default(),
            // MISO held high: everything reads 0xFF, status included.
            read(0x01, &[0xFF, 0xFF]),
            read(0x07, &[0xFF]),
            configure_default(),
            // Flag set, but the status register is empty.
            rtd(8362, true),
            read(0x07, &[0x00]),
            write(&[0x80, 0xC2]),
        ],
    )];
    let mut node = Node::new(probes, Vec::new(), TickingClock(0));
    for _ in 0..3 {
        node.step(&mut NoopDelay::new()).unwrap();
    }
    let (good, bad) = decode(&finish(node));
    assert_eq!(bad, []);
    let faults: Vec<(u8, i32)> = good
        .iter()
        .filter_map(|m| match m.body {
            Body::TankTemperature { fault, milli_c, .. } => Some((fault, milli_c)),
            Body::Heartbeat { .. } => None,
        })
        .collect();
    assert_eq!(
        faults,
        [
            (FAULT_NO_ANSWER, 0),
            (FAULT_NO_ANSWER, 0),
            (FAULT_UNEXPLAINED, 0)
        ]
    );
}

/// An SPI device whose bus is broken.
struct BrokenBus;

impl ErrorType for BrokenBus {
    type Error = ErrorKind;
}

impl SpiDevice for BrokenBus {
    fn transaction(&mut self, _: &mut [Operation<'_, u8>]) -> Result<(), ErrorKind> {
        Err(ErrorKind::ModeFault)
    }
}

#[test]
fn a_bus_error_is_no_answer_and_the_other_channels_still_report() {
    let probes = [
        Max31865::new(BrokenBus, Config::default()),
        Max31865::new(BrokenBus, Config::default()),
    ];
    let mut node = Node::new(probes, Vec::new(), TickingClock(0));
    assert_eq!(node.configure(), [false, false]);
    node.step(&mut NoopDelay::new()).unwrap();
    let (_, uart, _) = node.destroy();
    let (good, bad) = decode(&uart);
    assert_eq!(bad, []);
    assert_eq!(
        good,
        [
            heartbeat(0, 0, 2),
            tank(1, 1, 1, FAULT_NO_ANSWER, 0),
            tank(2, 2, 2, FAULT_NO_ANSWER, 0),
        ]
    );
}

#[test]
fn configure_reports_which_channels_answered() {
    let probes = [
        probe(
            Config::default(),
            &[configure_default(), read(0x00, &[0xC0])],
        ),
        // Configured, but reads back its power-on 0x00: not there, or not powered.
        probe(
            Config::default(),
            &[configure_default(), read(0x00, &[0x00])],
        ),
    ];
    let mut node = Node::new(probes, Vec::new(), TickingClock(0));
    assert_eq!(node.configure(), [true, false]);
    assert!(finish(node).is_empty(), "configuring sends no frame");
}

#[test]
fn one_shot_converters_start_together_and_are_read_after_the_longest_conversion() {
    let at_50_hz = Config::default()
        .mode(ConversionMode::OneShot)
        .filter(Filter::Hz50);
    let at_60_hz = Config::default().mode(ConversionMode::OneShot);
    let probes = [
        probe(at_50_hz, &[write(&[0x80, 0b1010_0001]), rtd(8362, false)]),
        probe(at_60_hz, &[write(&[0x80, 0b1010_0000]), rtd(9076, false)]),
    ];
    let mut delay = CheckedDelay::new(&[Delay::delay_us(66_000)]);
    let mut node = Node::new(probes, Vec::new(), TickingClock(0));
    node.step(&mut delay).unwrap();
    delay.done();
    let (good, _) = decode(&finish(node));
    assert_eq!(
        good[1..],
        [tank(1, 1, 1, 0, 24_990), tank(2, 2, 2, 0, 49_229)]
    );
}

/// A UART whose line is down.
struct DeadUart {
    attempts: usize,
}

#[derive(Debug, PartialEq)]
struct LineDown;

impl embedded_io::Error for LineDown {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::BrokenPipe
    }
}

impl embedded_io::ErrorType for DeadUart {
    type Error = LineDown;
}

impl embedded_io::Write for DeadUart {
    fn write(&mut self, _: &[u8]) -> Result<usize, LineDown> {
        self.attempts += 1;
        Err(LineDown)
    }

    fn flush(&mut self) -> Result<(), LineDown> {
        Ok(())
    }
}

#[test]
fn a_uart_error_is_returned_after_every_channel_was_sampled() {
    let probes = [
        probe(
            Config::default(),
            &[rtd(100, true), read(0x07, &[0x40]), write(&[0x80, 0xC2])],
        ),
        probe(Config::default(), &[rtd(8362, false)]),
    ];
    let mut node = Node::new(probes, DeadUart { attempts: 0 }, TickingClock(0));
    assert_eq!(node.step(&mut NoopDelay::new()), Err(LineDown));
    let (probes, uart, _) = node.destroy();
    // Heartbeat and both channels were each tried once; every SPI expectation was met.
    assert_eq!(uart.attempts, 3);
    for probe in probes {
        probe.destroy().done();
    }
}
