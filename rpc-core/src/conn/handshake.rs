use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::FrameIo;
use crate::protocol::{
    check_preface, encode_goaway, encode_settings, Frame, FrameDecoder, GoAwayCode, ProtocolError,
    Settings, PREFACE, PREFACE_LEN,
};
use crate::transport::BoxIo;

/// Reads until the buffer holds at least `n` bytes.
async fn read_at_least(io: &mut BoxIo, buf: &mut BytesMut, n: usize) -> Result<(), ProtocolError> {
    while buf.len() < n {
        buf.reserve(n - buf.len());
        if io.read_buf(buf).await? == 0 {
            return Err(ProtocolError::TruncatedFrame {
                buffered: buf.len(),
            });
        }
    }
    Ok(())
}

/// Reads frames until the first one, which must be SETTINGS.
async fn read_settings(
    io: &mut BoxIo,
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
) -> Result<Settings, ProtocolError> {
    loop {
        match decoder.decode(buf)? {
            Some(Frame::Settings(s)) => return Ok(s),
            Some(Frame::GoAway(g)) => {
                return Err(ProtocolError::PeerGoAway {
                    code: g.code,
                    message: String::from_utf8_lossy(&g.message).into_owned(),
                })
            }
            Some(_) => return Err(ProtocolError::ExpectedSettings),
            None => {
                if io.read_buf(buf).await? == 0 {
                    return Err(ProtocolError::TruncatedFrame {
                        buffered: buf.len(),
                    });
                }
            }
        }
    }
}

fn preface_and_settings(local: &Settings) -> BytesMut {
    let mut out = BytesMut::with_capacity(64);
    out.put_slice(&PREFACE);
    encode_settings(&mut out, local);
    out
}

/// The client side: send our preface and settings, then read the server's.
pub(crate) async fn client_handshake(
    mut io: BoxIo,
    local: &Settings,
) -> Result<(FrameIo, Settings), ProtocolError> {
    io.write_all(&preface_and_settings(local)).await?;
    io.flush().await?;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    read_at_least(&mut io, &mut buf, PREFACE_LEN).await?;
    let preface: [u8; PREFACE_LEN] = buf[..PREFACE_LEN]
        .try_into()
        .map_err(|_| ProtocolError::Malformed("short preface"))?;
    check_preface(&preface)?;
    let _ = buf.split_to(PREFACE_LEN);
    let decoder = FrameDecoder::new(local);
    let peer = read_settings(&mut io, &mut buf, &decoder).await?;
    Ok((FrameIo::new(io, buf, decoder), peer))
}

/// What the server side learned from a completed handshake.
pub(crate) struct ServerHandshake {
    pub(crate) io: FrameIo,
    pub(crate) peer: Settings,
}

/// The server side: check the client's preface, answer with ours and our settings, then read the
/// client's settings. A wrong version is told with a go-away before the connection closes.
pub(crate) async fn server_handshake(
    mut io: BoxIo,
    local: &Settings,
    timeout: Duration,
) -> Result<ServerHandshake, ProtocolError> {
    let work = async {
        let mut buf = BytesMut::with_capacity(64 * 1024);
        read_at_least(&mut io, &mut buf, PREFACE_LEN).await?;
        let preface: [u8; PREFACE_LEN] = buf[..PREFACE_LEN]
            .try_into()
            .map_err(|_| ProtocolError::Malformed("short preface"))?;
        if let Err(e) = check_preface(&preface) {
            if let ProtocolError::UnsupportedVersion { .. } = e {
                let mut out = BytesMut::new();
                out.put_slice(&PREFACE);
                encode_goaway(&mut out, 0, GoAwayCode::UnsupportedVersion, &e.to_string());
                // Best effort: the peer learns why before we close.
                let _ = io.write_all(&out).await;
                let _ = io.shutdown().await;
            }
            return Err(e);
        }
        let _ = buf.split_to(PREFACE_LEN);
        io.write_all(&preface_and_settings(local)).await?;
        io.flush().await?;
        let decoder = FrameDecoder::new(local);
        let peer = read_settings(&mut io, &mut buf, &decoder).await?;
        Ok(ServerHandshake {
            io: FrameIo::new(io, buf, decoder),
            peer,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(res) => res,
        Err(_) => Err(ProtocolError::HandshakeTimeout),
    }
}
