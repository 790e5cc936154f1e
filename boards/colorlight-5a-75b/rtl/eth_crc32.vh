// IEEE 802.3 CRC-32, reflected form (polynomial 0xEDB88320), one byte per call.
// Initialise the register to 32'hFFFFFFFF; the FCS is the complement, sent least
// significant byte first; over a frame and its FCS the register ends at 32'hDEBB20E3.
function [31:0] crc32_byte(input [31:0] crc, input [7:0] data);
    integer b;
    reg [31:0] c;
    begin
        c = crc ^ {24'd0, data};
        for (b = 0; b < 8; b = b + 1) c = c[0] ? (c >> 1) ^ 32'hEDB88320 : (c >> 1);
        crc32_byte = c;
    end
endfunction
