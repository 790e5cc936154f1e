// RGMII <-> GMII for one PHY, with the ECP5 DDR I/O primitives (IDDRX1F, ODDRX1F,
// DELAYG) instantiated as black boxes (yosys maps them; rust-hdl has no IDDR).
//
// Receive: the PHY sends RXC edge-aligned with RXD/RX_CTL (RTL8211F and B50612D
// default), so the data and control inputs go through a DELAYG of RX_DELAY taps (about
// 25 ps each on the ECP5; 80 taps ~ 2 ns, the RGMII skew) before the IDDRX1F. This is the
// same choice as LiteX's LiteEthPHYRGMII (rx_delay = 2 ns) on this board.
// Rising edge: RXD = byte[3:0], RX_CTL = RX_DV. Falling edge: RXD = byte[7:4],
// RX_CTL = RX_DV xor RX_ER.
//
// Transmit: TXC is forwarded from the core clock through an ODDRX1F (1 then 0), edge
// aligned with TXD/TX_CTL; the PHY adds the 2 ns TX delay itself (LiteX's tx_delay = 0 on
// this board, the PHY's TXDLY strap).
`default_nettype none
module rgmii_phy_if #(
    parameter RX_DELAY = 80
) (
    // RGMII pins
    input  wire       rgmii_rxc,
    input  wire [3:0] rgmii_rxd,
    input  wire       rgmii_rx_ctl,
    output wire       rgmii_txc,
    output wire [3:0] rgmii_txd,
    output wire       rgmii_tx_ctl,

    // GMII, receive clock domain
    output wire       rx_clk,
    output wire [7:0] gmii_rxd,
    output wire       gmii_rx_dv,
    output wire       gmii_rx_er,

    // GMII, transmit (core) clock domain
    input  wire       tx_clk,
    input  wire       tx_rst,
    input  wire [7:0] gmii_txd,
    input  wire       gmii_tx_en,
    input  wire       gmii_tx_er
);
    assign rx_clk = rgmii_rxc;

    wire [4:0] rx_delayed;
    wire [4:0] rx_q0, rx_q1;
    genvar i;
    generate
        for (i = 0; i < 5; i = i + 1) begin : rx_bit
            DELAYG #(
                .DEL_MODE ("USER_DEFINED"),
                .DEL_VALUE(RX_DELAY)
            ) delay (
                .A(i < 4 ? rgmii_rxd[i] : rgmii_rx_ctl),
                .Z(rx_delayed[i])
            );
            IDDRX1F iddr (
                .D   (rx_delayed[i]),
                .SCLK(rgmii_rxc),
                .RST (1'b0),
                .Q0  (rx_q0[i]),
                .Q1  (rx_q1[i])
            );
        end
    endgenerate

    assign gmii_rxd   = {rx_q1[3:0], rx_q0[3:0]};
    assign gmii_rx_dv = rx_q0[4];
    assign gmii_rx_er = rx_q0[4] ^ rx_q1[4];

    wire [4:0] tx_d0 = {gmii_tx_en, gmii_txd[3:0]};
    wire [4:0] tx_d1 = {gmii_tx_en ^ gmii_tx_er, gmii_txd[7:4]};
    wire [4:0] tx_q;
    generate
        for (i = 0; i < 5; i = i + 1) begin : tx_bit
            ODDRX1F oddr (
                .D0  (tx_d0[i]),
                .D1  (tx_d1[i]),
                .SCLK(tx_clk),
                .RST (tx_rst),
                .Q   (tx_q[i])
            );
        end
    endgenerate
    assign rgmii_txd    = tx_q[3:0];
    assign rgmii_tx_ctl = tx_q[4];

    ODDRX1F txc_oddr (
        .D0  (1'b1),
        .D1  (1'b0),
        .SCLK(tx_clk),
        .RST (tx_rst),
        .Q   (rgmii_txc)
    );
endmodule
`default_nettype wire
