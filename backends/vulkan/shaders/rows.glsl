// Row r of a [ne0, ne1, ne2, ne3] tensor -> its (i1, i2, i3) and a start offset from strides.
uint row_offset(uint r, uint ne1, uint ne2, uint s1, uint s2, uint s3) {
  uint i1 = r % ne1, i2 = (r / ne1) % ne2, i3 = r / (ne1 * ne2);
  return i1 * s1 + i2 * s2 + i3 * s3;
}
