// A terminal's phone names its vehicle whatever the edition's phone width.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { vehicleIdOf } from '../../jt808/header.js';

describe('vehicleIdOf', () => {
  it('gives a terminal one vehicle id in its 12-digit and 20-digit phone forms', () => {
    assert.equal(vehicleIdOf('013912345678'), '13912345678');
    assert.equal(vehicleIdOf('00000000013912345678'), '13912345678');
  });

  it('keeps inner and trailing zeros, and names an all-zero phone "0"', () => {
    assert.equal(vehicleIdOf('010020003000'), '10020003000');
    assert.equal(vehicleIdOf('000000000000'), '0');
  });
});
