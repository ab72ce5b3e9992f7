#![no_std]
#![no_main]
use panic_halt as _;
use stm32f4xx_hal as _;
#[cortex_m_rt::entry]
fn main() -> ! { loop {} }
