use std::time::Duration;

use bytes::{BufMut, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::FrameIo;
use crate::protocol::{
    check_preface, encode_goaway, encode_settings, frame_type, Frame, FrameDecoder, ProtocolError,
    Settings, HEADER_LEN, PREFACE, PREFACE_LEN,
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

/// A side in its handshake buffers this much at first: the preface and a SETTINGS frame are a few
/// dozen bytes. The 64 KiB read buffer of an established connection comes later, when needed.
pub(crate) const HANDSHAKE_BUFFER: usize = 1024;

/// What the first frame's header says, when it is here and its payload is not (yet): the frame
/// type and the payload bytes still missing. `None` when the header is not complete, the frame
/// is, or the header breaks our limits (the decoder reports that).
fn incomplete_first_frame(buf: &BytesMut, max_frame: u32) -> Option<(u8, usize)> {
    let header = buf.get(..HEADER_LEN)?;
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
    let missing = (HEADER_LEN + len as usize).checked_sub(buf.len())?;
    let known = (frame_type::SETTINGS..=frame_type::GOAWAY).contains(&header[4]);
    (missing > 0 && len <= max_frame && known).then_some((header[4], missing))
}

/// Reads frames until the first one, which must be SETTINGS.
///
/// The buffer grows only with bytes that arrived: a header that announces a large payload does
/// not reserve it (a peer in its handshake holds a small buffer), and a first frame of another
/// type is refused from its header, without waiting for its payload.
async fn read_settings(
    io: &mut BoxIo,
    buf: &mut BytesMut,
    decoder: &FrameDecoder,
    max_frame: u32,
) -> Result<Settings, ProtocolError> {
    loop {
        if let Some((kind, missing)) = incomplete_first_frame(buf, max_frame) {
            if kind != frame_type::SETTINGS && kind != frame_type::GOAWAY {
                return Err(ProtocolError::ExpectedSettings);
            }
            buf.reserve(missing.min(HANDSHAKE_BUFFER));
            if io.read_buf(buf).await? == 0 {
                return Err(ProtocolError::TruncatedFrame {
                    buffered: buf.len(),
                });
            }
            continue;
        }
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

/// How long a side that refused a handshake keeps reading (and discarding) before it closes.
const REFUSAL_LINGER: Duration = Duration::from_secs(1);

/// Whether a handshake error is the peer's to hear about with a GOAWAY: not when the peer is gone
/// (I/O error, end of stream) or closed first with its own GOAWAY, and not for a wrong magic, which
/// the spec answers with silence (`docs/protocol.md` §2, §10).
fn peer_should_hear(e: &ProtocolError) -> bool {
    !matches!(
        e,
        ProtocolError::Io(_)
            | ProtocolError::TruncatedFrame { .. }
            | ProtocolError::PeerGoAway { .. }
            | ProtocolError::BadMagic
            | ProtocolError::HandshakeTimeout
    )
}

/// Tells the peer why the handshake failed, as after the handshake: `prefix` (our preface, when
/// not yet sent), a GOAWAY with the error's code and last call id 0, then a half-close. Then reads
/// and discards until the peer closes, for at most [`REFUSAL_LINGER`], so that closing with its
/// bytes unread (the rest of an oversized frame) does not reset the connection and destroy the
/// GOAWAY before the peer reads it. Best effort: errors end it quietly.
async fn refuse(io: &mut BoxIo, prefix: &[u8], e: &ProtocolError) {
    let mut out = BytesMut::with_capacity(prefix.len() + 64);
    out.put_slice(prefix);
    encode_goaway(&mut out, 0, e.goaway_code(), &e.to_string());
    if io.write_all(&out).await.is_err() || io.shutdown().await.is_err() {
        return;
    }
    // On the heap: a stack array would sit in every connection's handshake future.
    let mut sink = vec![0u8; 4096];
    let _ = tokio::time::timeout(REFUSAL_LINGER, async {
        while matches!(io.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
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
    let mut buf = BytesMut::with_capacity(HANDSHAKE_BUFFER);
    // A TLS server's answer (an alert, or its hello) is a TLS record, never our preface.
    let tls_record = |b: &[u8]| matches!(b, [21 | 22, 3, ..]);
    if let Err(e) = read_at_least(&mut io, &mut buf, PREFACE_LEN).await {
        return Err(if tls_record(&buf) {
            ProtocolError::TlsPeer
        } else {
            e
        });
    }
    let preface: [u8; PREFACE_LEN] = buf[..PREFACE_LEN]
        .try_into()
        .map_err(|_| ProtocolError::Malformed("short preface"))?;
    if let Err(e) = check_preface(&preface) {
        return Err(if tls_record(&preface) {
            ProtocolError::TlsPeer
        } else {
            e
        });
    }
    let _ = buf.split_to(PREFACE_LEN);
    let decoder = FrameDecoder::new(local);
    let peer = match read_settings(&mut io, &mut buf, &decoder, local.max_frame_size).await {
        Ok(peer) => peer,
        Err(e) => {
            if peer_should_hear(&e) {
                refuse(&mut io, &[], &e).await;
            }
            return Err(e);
        }
    };
    // The frames of protocol 1.1 are read once both sides announced them.
    let decoder = FrameDecoder::negotiated(local, &peer);
    Ok((FrameIo::new(io, buf, decoder), peer))
}

/// What the server side learned from a completed handshake.
pub(crate) struct ServerHandshake {
    pub(crate) io: FrameIo,
    pub(crate) peer: Settings,
}

/// The server side: check the client's preface, answer with ours and our settings, then read the
/// client's settings. A wrong version, and a first frame that is not a well-formed SETTINGS within
/// our limits, are told with a go-away before the connection closes.
///
/// `buf` holds the bytes of the connection read already (to tell the native protocol from HTTP
/// by them), usually none.
pub(crate) async fn server_handshake_after(
    mut io: BoxIo,
    mut buf: BytesMut,
    local: &Settings,
    timeout: Duration,
) -> Result<ServerHandshake, ProtocolError> {
    let work = async {
        buf.reserve(HANDSHAKE_BUFFER.saturating_sub(buf.len()));
        read_at_least(&mut io, &mut buf, PREFACE_LEN).await?;
        let preface: [u8; PREFACE_LEN] = buf[..PREFACE_LEN]
            .try_into()
            .map_err(|_| ProtocolError::Malformed("short preface"))?;
        if let Err(e) = check_preface(&preface) {
            if matches!(preface, [22, 3, ..]) {
                return Err(ProtocolError::TlsClient);
            }
            if peer_should_hear(&e) {
                // A wrong version: our preface first, so that the peer can read the GOAWAY.
                refuse(&mut io, &PREFACE, &e).await;
            }
            return Err(e);
        }
        let _ = buf.split_to(PREFACE_LEN);
        io.write_all(&preface_and_settings(local)).await?;
        io.flush().await?;
        let decoder = FrameDecoder::new(local);
        // A first frame that is not a good SETTINGS gets the GOAWAY the spec names, as after the
        // handshake (our preface and SETTINGS are already out).
        let peer = match read_settings(&mut io, &mut buf, &decoder, local.max_frame_size).await {
            Ok(peer) => peer,
            Err(e) => {
                if peer_should_hear(&e) {
                    refuse(&mut io, &[], &e).await;
                }
                return Err(e);
            }
        };
        Ok(ServerHandshake {
            io: FrameIo::new(io, buf, FrameDecoder::negotiated(local, &peer)),
            peer,
        })
    };
    match tokio::time::timeout(timeout, work).await {
        Ok(res) => res,
        Err(_) => Err(ProtocolError::HandshakeTimeout),
    }
}

#[cfg(test)]
mod buffer_tests {
    use super::*;

    /// A connection in its handshake holds a small buffer, and keeps it small when a first frame
    /// announces a large payload it does not send (issue 12, item 8).
    #[tokio::test(start_paused = true)]
    async fn a_handshake_holds_a_small_buffer() {
        let local = Settings::protocol_default();
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut hello = BytesMut::new();
        hello.put_slice(&PREFACE);
        encode_settings(&mut hello, &local);
        client.write_all(&hello).await.unwrap();
        let hs = server_handshake_after(
            Box::new(server),
            BytesMut::new(),
            &local,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        assert!(
            hs.io.buffer_bytes() <= HANDSHAKE_BUFFER,
            "{}",
            hs.io.buffer_bytes()
        );

        // A SETTINGS header announcing 4 MiB, then a trickle: the buffer grows with what came.
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut server: BoxIo = Box::new(server);
        let mut head = BytesMut::new();
        head.put_u32(local.max_frame_size - 6);
        head.put_u8(frame_type::SETTINGS);
        head.put_bytes(0, 5);
        head.put_bytes(0, 600);
        client.write_all(&head).await.unwrap();
        let decoder = FrameDecoder::new(&local);
        let mut buf = BytesMut::with_capacity(HANDSHAKE_BUFFER);
        let read = read_settings(&mut server, &mut buf, &decoder, local.max_frame_size);
        let waited = tokio::time::timeout(Duration::from_secs(1), read).await;
        assert!(waited.is_err(), "the frame is not complete");
        assert_eq!(buf.len(), head.len());
        assert!(buf.capacity() <= 4 * HANDSHAKE_BUFFER, "{}", buf.capacity());

        // A first frame of another type is refused from its header.
        let (mut client, server) = tokio::io::duplex(1 << 20);
        let mut server: BoxIo = Box::new(server);
        let mut head = BytesMut::new();
        head.put_u32(1 << 20);
        head.put_u8(frame_type::REQUEST);
        head.put_u8(0);
        head.put_u32(1);
        client.write_all(&head).await.unwrap();
        let mut buf = BytesMut::new();
        let refused = read_settings(&mut server, &mut buf, &decoder, local.max_frame_size).await;
        assert!(
            matches!(refused, Err(ProtocolError::ExpectedSettings)),
            "{refused:?}"
        );
    }
}
