"""The gateway's HTTP surface: parse, call one flow, render. One router a file."""
