//! The WAN relay (`crossmatch-relay`), run as a process between loopback members: delays by
//! pair and never early, order kept under jitter, stalls, cuts and heals, the control port's
//! errors, and backpressure from a full queue. A test binary of its own: it links no node crate.

mod harness;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use harness::{Relay, TempFile, accept, dial_from, member, temp_path, try_dial_from, within};

/// Reads exactly `n` bytes, bounded, and returns them with the instant the read completed.
async fn read_n(stream: &mut tokio::net::TcpStream, n: usize, what: &str) -> (Vec<u8>, Instant) {
    let mut bytes = vec![0; n];
    within(what, stream.read_exact(&mut bytes)).await.unwrap_or_else(|e| panic!("{what}: {e}"));
    (bytes, Instant::now())
}

#[tokio::test]
async fn delays_are_chosen_by_pair_and_a_chunk_is_never_early() {
    let (listener, target) = member().await;
    let delays = TempFile::new("delays", "# one-way ms\n127.0.0.2 a 400\ndefault 0\n");
    let relay = Relay::start(&[
        "--route",
        &format!("a=127.0.0.1:0={target}"),
        "--route",
        &format!("b=127.0.0.1:0={target}"),
        "--delays",
        delays.arg(),
        "--control",
        "127.0.0.1:0",
    ]);
    // From 127.0.0.2, route a: 400 ms by the file, never less.
    let mut slow = dial_from("127.0.0.2", relay.route("a")).await;
    let mut slow_at_member = accept(&listener).await;
    let sent = Instant::now();
    slow.write_all(b"x").await.unwrap();
    let (_, arrived) = read_n(&mut slow_at_member, 1, "the first byte from 127.0.0.2").await;
    assert!(arrived - sent >= Duration::from_millis(400), "delivered after {:?}", arrived - sent);

    // From 127.0.0.1, the same route: no delay. Sent after the slow byte, it arrives first.
    let mut fast = dial_from("127.0.0.1", relay.route("a")).await;
    let mut fast_at_member = accept(&listener).await;
    let sent = Instant::now();
    slow.write_all(b"y").await.unwrap();
    fast.write_all(b"z").await.unwrap();
    let (slow_read, fast_read) = tokio::join!(
        read_n(&mut slow_at_member, 1, "the second byte from 127.0.0.2"),
        read_n(&mut fast_at_member, 1, "the byte from 127.0.0.1"),
    );
    assert!(fast_read.1 < slow_read.1, "the undelayed pair's byte came after the delayed one's");
    assert!(slow_read.1 - sent >= Duration::from_millis(400));

    // `delay` reaches a live connection: its next chunks take the new delay.
    assert_eq!(relay.command("delay 127.0.0.1 a 300").await, "ok delay 127.0.0.1 a 300 0 live=1");
    let sent = Instant::now();
    fast.write_all(b"w").await.unwrap();
    let (_, arrived) = read_n(&mut fast_at_member, 1, "the byte after the delay change").await;
    assert!(arrived - sent >= Duration::from_millis(300), "delivered after {:?}", arrived - sent);

    // Both directions of a connection take the pair's delay: route b from 127.0.0.1.
    assert_eq!(relay.command("delay * b 250").await, "ok delay * b 250 0 live=0");
    let mut other = dial_from("127.0.0.1", relay.route("b")).await;
    let mut other_at_member = accept(&listener).await;
    let sent = Instant::now();
    other_at_member.write_all(b"v").await.unwrap();
    let (_, arrived) = read_n(&mut other, 1, "the byte back from the member").await;
    assert!(arrived - sent >= Duration::from_millis(250), "delivered after {:?}", arrived - sent);

    // Counted by pair: the source address tells the dialers apart.
    let stats = relay
        .stats_until(
            "",
            &[
                "127.0.0.1 a up=2/2 down=0/0 queued=0 open=1 total=1 refused=0",
                "127.0.0.1 b up=0/0 down=1/1",
                "127.0.0.2 a up=2/2 down=0/0",
            ],
        )
        .await;
    assert!(stats.starts_with("ok pairs=3 | "), "{stats}");
    assert_eq!(relay.command("stats 127.0.0.2 *").await, {
        "ok pairs=1 | 127.0.0.2 a up=2/2 down=0/0 queued=0 open=1 total=1 refused=0".to_owned()
    });
}
#[tokio::test]
async fn dial_from_gives_each_source_its_own_address_at_the_member() {
    let (listener, target) = member().await;
    let relay = Relay::start(&[
        "--route",
        &format!("m=127.0.0.1:0={target}"),
        "--dial-from",
        "127.0.0.2=127.0.0.3",
        "--dial-from",
        "127.0.0.4=127.0.0.5",
    ]);
    for (from, seen) in [("127.0.0.2", "127.0.0.3"), ("127.0.0.4", "127.0.0.5")] {
        let _dialer = dial_from(from, relay.route("m")).await;
        let (_, peer) = within("the forwarded connection", listener.accept()).await.unwrap();
        assert_eq!(peer.ip().to_string(), seen, "the member saw the dialer {from} as {peer}");
    }
}

/// Echoes everything the relay forwards, on every connection.
async fn echo_member() -> std::net::SocketAddr {
    let (listener, address) = member().await;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut from, mut to) = stream.split();
                let _ = tokio::io::copy(&mut from, &mut to).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn order_is_kept_under_jitter_both_ways() {
    const SEED: &str = "20260401";
    const MESSAGES: u32 = 400;
    let target = echo_member().await;
    let relay = Relay::start(&[
        "--route",
        &format!("echo=127.0.0.1:0={target}"),
        "--control",
        "127.0.0.1:0",
        "--seed",
        SEED,
    ]);
    assert_eq!(relay.command("delay * echo 2 40").await, "ok delay * echo 2 40 live=0");
    let stream = dial_from("127.0.0.1", relay.route("echo")).await;
    let (mut from, mut to) = stream.into_split();
    let writer = tokio::spawn(async move {
        for n in 0..MESSAGES {
            to.write_all(&n.to_be_bytes()).await.unwrap();
            // Apart in time, so the relay reads many chunks with their own jitter.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        to
    });
    let mut received = vec![0; MESSAGES as usize * 4];
    within("every message echoed", from.read_exact(&mut received)).await.unwrap();
    let numbers: Vec<u32> =
        received.chunks(4).map(|bytes| u32::from_be_bytes(bytes.try_into().unwrap())).collect();
    let expected: Vec<u32> = (0..MESSAGES).collect();
    assert!(numbers == expected, "messages out of order (seed {SEED})");
    drop(within("the writer", writer).await.unwrap());
    let stats = relay.command("stats").await;
    let chunks = |direction: &str| -> u64 {
        let field = stats.split_whitespace().find(|w| w.starts_with(direction)).unwrap();
        field.split('/').nth(1).unwrap().parse().unwrap()
    };
    assert!(
        chunks("up=") > 10 && chunks("down=") > 10,
        "too few chunks to exercise jitter: {stats}"
    );
}

#[tokio::test]
async fn a_stall_holds_everything_then_releases_it_in_order() {
    let target = echo_member().await;
    let relay =
        Relay::start(&["--route", &format!("s=127.0.0.1:0={target}"), "--control", "127.0.0.1:0"]);
    let mut stream = dial_from("127.0.0.1", relay.route("s")).await;
    stream.write_all(b"before").await.unwrap();
    assert_eq!(read_n(&mut stream, 6, "the echo before the stall").await.0, b"before");

    let stalled_at = Instant::now();
    assert_eq!(relay.command("stall 127.0.0.1 s 1.5").await, "ok stall 127.0.0.1 s 1.5 live=1");
    let mut sent = Vec::new();
    for n in 0u8..50 {
        stream.write_all(&[n]).await.unwrap();
        sent.push(n);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (echoed, arrived) = read_n(&mut stream, sent.len(), "everything held by the stall").await;
    assert!(
        arrived - stalled_at >= Duration::from_millis(1500),
        "released after {:?}",
        arrived - stalled_at
    );
    assert_eq!(echoed, sent, "the stall released out of order");
    // A connection opened during a stall is held too. The stall runs from when the relay takes
    // the command, so from no earlier than just before it is sent.
    let stalled_at = Instant::now();
    assert!(relay.command("stall * s 1").await.starts_with("ok stall * s 1 live=1"));
    let mut late = dial_from("127.0.0.1", relay.route("s")).await;
    late.write_all(b"late").await.unwrap();
    let (echoed, arrived) = read_n(&mut late, 4, "the new connection's echo").await;
    assert_eq!(echoed, b"late");
    assert!(
        arrived - stalled_at >= Duration::from_millis(1000),
        "released after {:?}",
        arrived - stalled_at
    );
}

/// Whether the peer closed or reset the stream (reads end), within `STEP`.
async fn is_closed(stream: &mut tokio::net::TcpStream) -> bool {
    let mut byte = [0];
    matches!(within("the connection to close", stream.read(&mut byte)).await, Ok(0) | Err(_))
}

#[tokio::test]
async fn a_cut_closes_live_connections_and_refuses_new_ones_until_healed() {
    let target = echo_member().await;
    let relay =
        Relay::start(&["--route", &format!("c=127.0.0.1:0={target}"), "--control", "127.0.0.1:0"]);
    let mut cut_off = dial_from("127.0.0.1", relay.route("c")).await;
    let mut spared = dial_from("127.0.0.2", relay.route("c")).await;
    for stream in [&mut cut_off, &mut spared] {
        stream.write_all(b"hi").await.unwrap();
        assert_eq!(read_n(stream, 2, "the echo before the cut").await.0, b"hi");
    }
    assert_eq!(relay.command("cut 127.0.0.1 c").await, "ok cut 127.0.0.1 c closed=1");
    assert!(is_closed(&mut cut_off).await);
    // The other pair's connection carries on.
    spared.write_all(b"still").await.unwrap();
    assert_eq!(read_n(&mut spared, 5, "the spared connection's echo").await.0, b"still");
    // New connections of the cut pair are refused: accepted by the kernel, then reset (which
    // may come before the dialer sees its connection complete).
    if let Ok(mut refused) = try_dial_from("127.0.0.1", relay.route("c")).await {
        assert!(is_closed(&mut refused).await);
    }
    relay.stats_until("127.0.0.1 c", &["open=0 total=1 refused=1"]).await;
    // A heal that covers the cut lifts it; one that does not, does nothing.
    assert_eq!(relay.command("heal 127.0.0.2 c").await, "ok heal 127.0.0.2 c lifted=0");
    assert_eq!(relay.command("heal * *").await, "ok heal * * lifted=1");
    let mut healed = dial_from("127.0.0.1", relay.route("c")).await;
    healed.write_all(b"back").await.unwrap();
    assert_eq!(read_n(&mut healed, 4, "the echo after the heal").await.0, b"back");
}

#[tokio::test]
async fn an_end_of_stream_passes_through_and_a_reset_stays_a_reset() {
    let (listener, target) = member().await;
    let relay = Relay::start(&["--route", &format!("h=127.0.0.1:0={target}")]);
    // The dialer stops sending; the member still answers, then closes: both ends seen in turn.
    let mut dialer = dial_from("127.0.0.1", relay.route("h")).await;
    let mut at_member = accept(&listener).await;
    dialer.write_all(b"ask").await.unwrap();
    dialer.shutdown().await.unwrap();
    let mut asked = Vec::new();
    within("the member to see the end of the request", at_member.read_to_end(&mut asked))
        .await
        .unwrap();
    assert_eq!(asked, b"ask");
    at_member.write_all(b"answer").await.unwrap();
    drop(at_member);
    let mut answer = Vec::new();
    within("the dialer to see the answer and its end", dialer.read_to_end(&mut answer))
        .await
        .unwrap();
    assert_eq!(answer, b"answer");
    // A member that resets its connection: the dialer sees a reset, not an orderly end.
    let mut dialer = dial_from("127.0.0.1", relay.route("h")).await;
    let at_member = accept(&listener).await;
    at_member.set_zero_linger().unwrap();
    drop(at_member);
    let mut byte = [0];
    let read = within("the reset to reach the dialer", dialer.read(&mut byte)).await;
    let kind = read.as_ref().map_err(std::io::Error::kind);
    assert_eq!(kind.err(), Some(std::io::ErrorKind::ConnectionReset), "the dialer read {read:?}");
}

#[tokio::test]
async fn the_control_port_answers_every_bad_line_with_an_error() {
    let target = echo_member().await;
    let socket = temp_path("control.sock");
    let control = format!("unix:{}", socket.display());
    let relay =
        Relay::start(&["--route", &format!("de=127.0.0.1:0={target}"), "--control", &control]);
    let mut session = relay.control_session().await;
    for (line, expected) in [
        ("", "err empty line"),
        ("reboot now", "err unknown command"),
        ("delay 127.0.0.1 de", "err usage: delay SRC_IP ROUTE MS [JITTER]"),
        ("delay 127.0.0.1 fr 10", "err no route named fr"),
        ("delay 127.0.0.999 de 10", "err a source is an IP address or *"),
        ("delay * de 10 60001", "err a delay is at most 60000 ms"),
        ("delay * de -5", "err a delay is a whole number of milliseconds"),
        ("stall * de 0", "err a stall lasts more than 0"),
        ("stall * de NaN", "err a stall lasts more than 0"),
        ("cut * ../de", "err a route name is 1 to 64 of"),
        ("stats * de extra", "err usage: stats [SRC_IP ROUTE]"),
    ] {
        let answer = session.send(line).await;
        assert!(answer.starts_with(expected), "{line:?} answered {answer:?}");
    }
    assert!(session.send_raw(b"stats \xff\xfe\n").await.starts_with("err a line is UTF-8 text"));
    // The session still works after its errors.
    assert_eq!(session.send("stats").await, "ok pairs=0");
    // A line past the bound is refused and the connection closed.
    let long = format!("stats {}\n", "x".repeat(4096));
    assert!(session.send_raw(long.as_bytes()).await.starts_with("err a line is at most 512 bytes"));
    assert!(session.is_closed().await, "the connection stays open after a long line");
    // The relay still answers others.
    assert_eq!(relay.command("stats").await, "ok pairs=0");
    drop(relay);
    let _ = std::fs::remove_file(socket);
}

/// The largest buffer the kernel may give one TCP socket for receiving plus sending.
fn socket_buffers_max() -> u64 {
    let max = |file: &str| -> u64 {
        let text =
            std::fs::read_to_string(format!("/proc/sys/net/ipv4/{file}")).unwrap_or_default();
        text.split_whitespace().nth(2).and_then(|v| v.parse().ok()).unwrap_or(8 << 20)
    };
    max("tcp_rmem") + max("tcp_wmem")
}

#[tokio::test]
async fn a_full_queue_stops_reading_so_memory_stays_bounded() {
    const CHUNK: u64 = 4096;
    const QUEUE: u64 = 4;
    let (listener, target) = member().await;
    let relay = Relay::start(&[
        "--route",
        &format!("q=127.0.0.1:0={target}"),
        "--control",
        "127.0.0.1:0",
        "--chunk-bytes",
        &CHUNK.to_string(),
        "--queue-chunks",
        &QUEUE.to_string(),
    ]);
    let stream = dial_from("127.0.0.1", relay.route("q")).await;
    let mut at_member = accept(&listener).await; // accepted, not read yet
    // Two sockets on each side of the relay may buffer; the relay itself holds its queue, the
    // chunk it waits to queue and the chunk it writes. Four times the buffers is still far below
    // what is offered.
    let held = (QUEUE + 2) * CHUNK;
    let bound = 4 * socket_buffers_max() + held;
    let offered = 8 * bound;
    let block = vec![0x42; 65_536];
    let mut written: u64 = 0;
    let mut last_progress = Instant::now();
    while written < offered && last_progress.elapsed() < Duration::from_millis(500) {
        match stream.try_write(&block) {
            Ok(n) => {
                written += n as u64;
                last_progress = Instant::now();
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(e) => panic!("writing into the relay: {e}"),
        }
    }
    assert!(
        written < bound,
        "the relay took {written} bytes with its receiver not reading (bound {bound})"
    );
    let stats = relay.command("stats").await;
    let queued: u64 = stats
        .split_whitespace()
        .find_map(|w| w.strip_prefix("queued="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no queued figure in {stats}"));
    assert!(queued <= held, "{queued} bytes held, past {QUEUE} + 2 chunks of {CHUNK}");
    // Once the member reads, everything written arrives.
    let mut stream = stream;
    stream.shutdown().await.unwrap();
    let mut received = Vec::new();
    within("everything held back", at_member.read_to_end(&mut received)).await.unwrap();
    assert_eq!(received.len() as u64, written);
    assert!(received.iter().all(|b| *b == 0x42));
}
