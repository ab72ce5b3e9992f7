//! The exact SPI traffic of every driver command, against embedded-hal-mock.

use embedded_hal_mock::eh1::spi::{Mock as SpiMock, Transaction as T};
use max31865::{Config, ConversionMode, Error, FaultStatus, Filter, Max31865, Rtd, Wiring};

/// A register write: one transaction, chip select low for the address and data bytes.
fn write(bytes: &[u8]) -> [T<u8>; 3] {
    [
        T::transaction_start(),
        T::write_vec(bytes.to_vec()),
        T::transaction_end(),
    ]
}

/// A register read: address out, then `response` in, in one transaction.
fn read(address: u8, response: &[u8]) -> [T<u8>; 4] {
    [
        T::transaction_start(),
        T::write_vec(vec![address]),
        T::read_vec(response.to_vec()),
        T::transaction_end(),
    ]
}

fn expect(parts: &[&[T<u8>]]) -> SpiMock<u8> {
    let all: Vec<T<u8>> = parts.iter().flat_map(|p| p.iter().cloned()).collect();
    SpiMock::new(&all)
}

#[test]
fn configure_writes_filter_safely_then_thresholds_then_clears_faults() {
    // 3-wire, 50 Hz, bias, automatic, thresholds 0x1234 (low) and 0x6000 (high).
    let config = Config::default()
        .wiring(Wiring::ThreeWire)
        .filter(Filter::Hz50)
        .fault_thresholds(0x1234, 0x6000);
    let spi = expect(&[
        // bias | 3-wire | 50 Hz, automatic conversion still off
        &write(&[0x80, 0b1001_0001]),
        // 0x83: high MSB, high LSB, low MSB, low LSB; codes shifted into D15..D1
        &write(&[0x83, 0xC0, 0x01, 0x24, 0x68]),
        // bias | auto | 3-wire | fault clear | 50 Hz
        &write(&[0x80, 0b1101_0011]),
    ]);
    let mut rtd = Max31865::new(spi, config);
    rtd.configure().unwrap();
    rtd.destroy().done();
}

#[test]
fn default_configuration_is_four_wire_60_hz_with_power_on_thresholds() {
    let spi = expect(&[
        &write(&[0x80, 0x80]),
        &write(&[0x83, 0xFF, 0xFF, 0x00, 0x00]),
        &write(&[0x80, 0xC2]),
    ]);
    let mut rtd = Max31865::new(spi, Config::default());
    rtd.configure().unwrap();
    rtd.destroy().done();
}

#[test]
fn thresholds_in_celsius_become_the_codes_the_chip_would_report() {
    // PT100 on 430 ohm: -100 degC is 60.256 ohm -> code 4591; 250 degC is 194.098 ohm ->
    // code 14791 (truncated, as the ADC does).
    let config = Config::default().fault_thresholds_celsius(-100.0, 250.0);
    assert_eq!(config.low_threshold, 4591);
    assert_eq!(config.high_threshold, 14791);
    let [high_msb, high_lsb] = ((14791u16 << 1) | 1).to_be_bytes();
    let [low_msb, low_lsb] = (4591u16 << 1).to_be_bytes();
    let spi = expect(&[
        &write(&[0x80, 0x80]),
        &write(&[0x83, high_msb, high_lsb, low_msb, low_lsb]),
        &write(&[0x80, 0xC2]),
    ]);
    let mut rtd = Max31865::new(spi, config);
    rtd.configure().unwrap();
    rtd.destroy().done();
}

#[test]
fn read_rtd_reads_both_data_registers_in_one_transaction() {
    // 0x3B88 = code 7620 << 1, fault flag clear: 100.0 ohm-ish on 430 ohm.
    let spi = expect(&[&read(0x01, &[0x3B, 0x88]), &read(0x01, &[0x3B, 0x89])]);
    let mut rtd = Max31865::new(spi, Config::default());
    let good = rtd.read_rtd().unwrap();
    assert_eq!(
        good,
        Rtd {
            code: 7620,
            fault: false
        }
    );
    let faulty = rtd.read_rtd().unwrap();
    assert_eq!(
        faulty,
        Rtd {
            code: 7620,
            fault: true
        }
    );
    rtd.destroy().done();
}

#[test]
fn read_fault_status_reads_register_7() {
    let spi = expect(&[&read(0x07, &[0x84])]);
    let mut rtd = Max31865::new(spi, Config::default());
    let status = rtd.read_fault_status().unwrap();
    assert_eq!(status, FaultStatus(0x84));
    assert!(status.is_fault());
    assert!(status.contains(FaultStatus::RTD_HIGH_THRESHOLD));
    assert!(status.contains(FaultStatus::OVER_UNDER_VOLTAGE));
    assert!(!status.contains(FaultStatus::RTD_LOW_THRESHOLD));
    rtd.destroy().done();
}

#[test]
fn clear_fault_rewrites_the_configuration_with_d1_set_and_d5_d3_d2_clear() {
    let config = Config::default()
        .wiring(Wiring::ThreeWire)
        .mode(ConversionMode::OneShot);
    // bias | 3-wire | fault clear; no auto, no one-shot, no fault cycle
    let spi = expect(&[&write(&[0x80, 0b1001_0010])]);
    let mut rtd = Max31865::new(spi, config);
    rtd.clear_fault().unwrap();
    rtd.destroy().done();
}

#[test]
fn one_shot_sets_d5_and_is_refused_in_automatic_mode() {
    let one_shot = Config::default()
        .filter(Filter::Hz50)
        .mode(ConversionMode::OneShot);
    let spi = expect(&[&write(&[0x80, 0b1010_0001])]);
    let mut rtd = Max31865::new(spi, one_shot);
    rtd.start_one_shot().unwrap();
    rtd.destroy().done();

    let spi = expect(&[]);
    let mut rtd = Max31865::new(spi, Config::default());
    assert_eq!(rtd.start_one_shot(), Err(Error::AutomaticMode));
    rtd.destroy().done();
}

#[test]
fn is_configured_compares_the_read_back_with_the_configuration() {
    let config = Config::default()
        .wiring(Wiring::ThreeWire)
        .filter(Filter::Hz50);
    // Configured chip, then one that reset to its power-on 0x00, then no chip (0xFF).
    let spi = expect(&[
        &read(0x00, &[0xD1]),
        &read(0x00, &[0x00]),
        &read(0x00, &[0xFF]),
    ]);
    let mut rtd = Max31865::new(spi, config);
    assert!(rtd.is_configured().unwrap());
    assert!(!rtd.is_configured().unwrap());
    assert!(!rtd.is_configured().unwrap());
    rtd.destroy().done();
}

#[test]
fn read_config_register_reads_register_0() {
    let spi = expect(&[&read(0x00, &[0xD1])]);
    let mut rtd = Max31865::new(spi, Config::default());
    assert_eq!(rtd.read_config_register().unwrap(), 0xD1);
    rtd.destroy().done();
}

#[test]
fn a_reading_converts_with_the_configured_reference_resistor() {
    let spi = expect(&[&read(0x01, &[0x3B, 0x88])]);
    let mut rtd = Max31865::new(spi, Config::default());
    let reading = rtd.read_rtd().unwrap();
    // 7620 / 32768 * 430 = 99.994 ohm, i.e. -0.016 degC.
    assert!((rtd.resistance(reading) - 99.9939).abs() < 1e-3);
    assert!((rtd.temperature(reading) - -0.0156).abs() < 1e-3);
    rtd.destroy().done();

    // The same code on a PT1000 board (4300 ohm reference) is the same temperature.
    let pt1000 = Config::default().resistors(4300.0, 1000.0);
    let rtd = Max31865::new(expect(&[]), pt1000);
    assert!((rtd.temperature(reading) - -0.0156).abs() < 1e-3);
    rtd.destroy().done();
}
