// Board-level testbench: Ethernet frames in on the RGMII pins of fulcrum_board, out on
// the other port's RGMII pins, with the ECP5 primitives modelled (ecp5_models.v).
//
// Each port's PHY receive clock runs at its own rate (RXC1_PS / RXC2_PS, default 500 ppm
// fast and 500 ppm slow against the 8000 ps core clock), so every frame crosses a real
// clock-domain boundary. Input files (+in1=, +in2=) hold one 9-bit hex word per line: a
// byte (00..ff, the frame as it is on the wire after the SFD, FCS included) or 100 (end
// of frame); frames go out back to back with the 12-byte inter-frame gap. An empty frame
// (a lone 100) is a pause of 2048 idle byte times. The output
// file (+out=) gets one line per frame seen on each port's TX pins:
//   <port> <start_ps> <idle_byte_times_before> <preamble_ok> <bytes after SFD, hex>
`timescale 1ps / 1ps
module tb_board;
    parameter RXC1_PS = 7996;
    parameter RXC2_PS = 8004;
    parameter MAX_WORDS = 1 << 20;

    reg clk25 = 0;
    always #20000 clk25 = ~clk25;

    // The PHYs launch RXD/RX_CTL on the edges of rxc1/rxc2 (no PHY RX delay). The
    // FPGA's IDDRs see that clock after the pin-to-global-clock insertion delay,
    // modelled as CLK_INSERTION_PS; the data DELAYG (RX_DELAY taps) must land the data
    // inside that window. (The insertion delay of the real board is not known from the
    // tools: nextpnr-ecp5 has no input-delay constraints; RX_DELAY follows LiteX's
    // working 2 ns on this board and is the knob to turn on hardware.)
    parameter CLK_INSERTION_PS = 3000;
    reg rxc1 = 0, rxc2 = 0;
    always #(RXC1_PS / 2) rxc1 = ~rxc1;
    always #(RXC2_PS / 2) rxc2 = ~rxc2;
    wire rxc1_fpga, rxc2_fpga;
    assign #(CLK_INSERTION_PS) rxc1_fpga = rxc1;
    assign #(CLK_INSERTION_PS) rxc2_fpga = rxc2;

    reg [3:0] rxd1 = 0, rxd2 = 0;
    reg rx_ctl1 = 0, rx_ctl2 = 0;
    wire txc1, txc2, tx_ctl1, tx_ctl2;
    wire [3:0] txd1, txd2;
    wire led_n, rst_n, mdc, mdio;
    pullup (mdio);  // the board's MDIO pull-up; no PHY model answers here (tests/mdio.rs has them)

    fulcrum_board dut (
        .clk25(clk25), .user_led_n(led_n), .eth_rst_n(rst_n), .eth_mdc(mdc), .eth_mdio(mdio),
        .eth1_rxc(rxc1_fpga), .eth1_rxd(rxd1), .eth1_rx_ctl(rx_ctl1),
        .eth1_txc(txc1), .eth1_txd(txd1), .eth1_tx_ctl(tx_ctl1),
        .eth2_rxc(rxc2_fpga), .eth2_rxd(rxd2), .eth2_rx_ctl(rx_ctl2),
        .eth2_txc(txc2), .eth2_txd(txd2), .eth2_tx_ctl(tx_ctl2)
    );

    reg [8:0] in1[0:MAX_WORDS-1];
    reg [8:0] in2[0:MAX_WORDS-1];
    integer n1, n2, out_fd;
    reg [1023:0] path;
    reg done1 = 0, done2 = 0;

    // A PHY sending on RGMII: data edge aligned with RXC (the FPGA delays it).
    task automatic send_byte_1(input [7:0] b, input en);
        begin
            @(posedge rxc1);
            rxd1 <= b[3:0];
            rx_ctl1 <= en;
            @(negedge rxc1);
            rxd1 <= b[7:4];
            rx_ctl1 <= en;
        end
    endtask
    task automatic send_byte_2(input [7:0] b, input en);
        begin
            @(posedge rxc2);
            rxd2 <= b[3:0];
            rx_ctl2 <= en;
            @(negedge rxc2);
            rxd2 <= b[7:4];
            rx_ctl2 <= en;
        end
    endtask

    integer i, j;
    initial begin
        for (i = 0; i < MAX_WORDS; i = i + 1) begin
            in1[i] = 9'h1ff;
            in2[i] = 9'h1ff;
        end
        if ($value$plusargs("in1=%s", path)) $readmemh(path, in1);
        if ($value$plusargs("in2=%s", path)) $readmemh(path, in2);
        if (!$value$plusargs("out=%s", path)) begin
            $display("tb_board: +out=FILE is required");
            $finish;
        end
        out_fd = $fopen(path, "w");
    end

    // Wait for the PLL lock and the resets, then send.
    initial begin
        #3000000;
        i = 0;
        while (in1[i] != 9'h1ff) begin
            if (in1[i] == 9'h100) begin  // an empty frame: a pause of 2048 byte times
                for (j = 0; j < 2048; j = j + 1) send_byte_1(8'h00, 0);
                i = i + 1;
            end else begin
            for (j = 0; j < 7; j = j + 1) send_byte_1(8'h55, 1);
            send_byte_1(8'hd5, 1);
            while (in1[i] != 9'h100) begin
                send_byte_1(in1[i][7:0], 1);
                i = i + 1;
            end
            i = i + 1;
            for (j = 0; j < 12; j = j + 1) send_byte_1(8'h00, 0);
            end
        end
        done1 = 1;
    end
    initial begin : sender2
        integer k, m;
        #3000000;
        k = 0;
        while (in2[k] != 9'h1ff) begin
            if (in2[k] == 9'h100) begin  // an empty frame: a pause of 2048 byte times
                for (m = 0; m < 2048; m = m + 1) send_byte_2(8'h00, 0);
                k = k + 1;
            end else begin
            for (m = 0; m < 7; m = m + 1) send_byte_2(8'h55, 1);
            send_byte_2(8'hd5, 1);
            while (in2[k] != 9'h100) begin
                send_byte_2(in2[k][7:0], 1);
                k = k + 1;
            end
            k = k + 1;
            for (m = 0; m < 12; m = m + 1) send_byte_2(8'h00, 0);
            end
        end
        done2 = 1;
    end

    // A PHY receiving on RGMII: it samples 2 ns after each TXC edge (its TX delay).
    reg [3:0] lo1, lo2;
    reg en1, en2;
    reg [7:0] b1, b2;
    reg v1 = 0, v2 = 0;  // one byte time sampled, valid on the falling-edge half
    always @(posedge txc1) begin
        #2000;
        lo1 = txd1;
        en1 = tx_ctl1;
    end
    always @(negedge txc1) begin
        #2000;
        b1 = {txd1, lo1};
        -> byte1;
    end
    always @(posedge txc2) begin
        #2000;
        lo2 = txd2;
        en2 = tx_ctl2;
    end
    always @(negedge txc2) begin
        #2000;
        b2 = {txd2, lo2};
        -> byte2;
    end
    event byte1, byte2;

    // Frame assembly per port.
    reg [7:0] buf1[0:4095];
    reg [7:0] buf2[0:4095];
    integer len1 = 0, len2 = 0, idle1 = 0, idle2 = 0, pre1 = 0, pre2 = 0;
    reg [63:0] start1, start2;
    integer gap1, gap2;
    reg in_frame1 = 0, in_frame2 = 0, pre_ok1, pre_ok2, sfd1, sfd2;
    always @(byte1) begin
        if (en1) begin
            if (!in_frame1) begin
                in_frame1 = 1;
                start1 = $time;
                gap1 = idle1;
                pre1 = 0;
                sfd1 = 0;
                pre_ok1 = 1;
                len1 = 0;
            end
            if (!sfd1) begin
                if (b1 == 8'hd5) begin
                    sfd1 = 1;
                    if (pre1 != 7) pre_ok1 = 0;
                end else begin
                    if (b1 != 8'h55) pre_ok1 = 0;
                    pre1 = pre1 + 1;
                end
            end else begin
                if (len1 < 4096) buf1[len1] = b1;
                len1 = len1 + 1;
            end
        end else begin
            if (in_frame1) begin
                write_frame(1, start1, gap1, pre_ok1, len1);
                in_frame1 = 0;
                idle1 = 0;
            end
            idle1 = idle1 + 1;
        end
    end
    always @(byte2) begin
        if (en2) begin
            if (!in_frame2) begin
                in_frame2 = 1;
                start2 = $time;
                gap2 = idle2;
                pre2 = 0;
                sfd2 = 0;
                pre_ok2 = 1;
                len2 = 0;
            end
            if (!sfd2) begin
                if (b2 == 8'hd5) begin
                    sfd2 = 1;
                    if (pre2 != 7) pre_ok2 = 0;
                end else begin
                    if (b2 != 8'h55) pre_ok2 = 0;
                    pre2 = pre2 + 1;
                end
            end else begin
                if (len2 < 4096) buf2[len2] = b2;
                len2 = len2 + 1;
            end
        end else begin
            if (in_frame2) begin
                write_frame(2, start2, gap2, pre_ok2, len2);
                in_frame2 = 0;
                idle2 = 0;
            end
            idle2 = idle2 + 1;
        end
    end

    task write_frame(input integer port, input [63:0] start, input integer gap,
                     input ok, input integer len);
        integer q;
        begin
            $fwrite(out_fd, "%0d %0d %0d %0d ", port, start, gap, ok);
            for (q = 0; q < len && q < 4096; q = q + 1)
                $fwrite(out_fd, "%02x", port == 1 ? buf1[q] : buf2[q]);
            $fwrite(out_fd, "\n");
        end
    endtask

    // Finish when both senders are done and both ports have been quiet for 200 us.
    initial begin
        wait (done1 && done2);
        #200000000;
        $fclose(out_fd);
        $finish;
    end
endmodule
