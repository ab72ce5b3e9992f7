#![no_std]
pub fn x(){}
