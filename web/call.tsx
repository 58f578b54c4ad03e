// Matchmaking and calls: join a queue for an intent, and when matched, a real WebRTC call with the
// peer (media from getUserMedia; offer, answer and ICE candidates relayed through /ws), a countdown
// to its end, video only once approved, and connect / block / report.
/// <reference lib="dom" />
import { Avatar } from "./avatar.tsx";
import { Field } from "./field.tsx";
import { useEffect, useRef, useState } from "preact/hooks";
import type { ServerEvent } from "../client/socket.ts";
import { api, done, explain, liveSocket, ok, secondsUntil, useEvent } from "./session.ts";
import type { Me } from "./main.tsx";

type Found = ServerEvent<"found-match">["data"];

/** One call's peer connection; kept on `window` so a test can read its state. */
class Call {
  readonly pc = new RTCPeerConnection({ iceServers: [] });
  readonly #setup: Promise<void>;
  #remoteSet!: () => void;
  readonly #remote = new Promise<void>((resolve) => (this.#remoteSet = resolve));
  stream: MediaStream | null = null;

  constructor(readonly match: Found, onRemote: (stream: MediaStream) => void) {
    const signal = (type: string, payload: unknown) =>
      liveSocket().send(type, { matchId: match.matchId, payload });
    this.pc.onicecandidate = (event) => {
      if (event.candidate) signal("ice-candidate", event.candidate.toJSON());
    };
    this.pc.ontrack = (event) => onRemote(event.streams[0]);
    this.#setup = (async () => {
      this.stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
      // Video is sent only once both agreed to it (video-request, video-approve).
      for (const track of this.stream.getVideoTracks()) track.enabled = false;
      for (const track of this.stream.getTracks()) this.pc.addTrack(track, this.stream);
      if (match.role === "offerer") {
        await this.pc.setLocalDescription(await this.pc.createOffer());
        signal("offer", this.pc.localDescription!.toJSON());
      }
    })();
  }

  async received(type: string, payload: RTCSessionDescriptionInit & RTCIceCandidateInit) {
    await this.#setup;
    if (type === "offer") {
      await this.pc.setRemoteDescription(payload);
      this.#remoteSet();
      await this.pc.setLocalDescription(await this.pc.createAnswer());
      liveSocket().send("answer", {
        matchId: this.match.matchId,
        payload: this.pc.localDescription!.toJSON(),
      });
    } else if (type === "answer") {
      await this.pc.setRemoteDescription(payload);
      this.#remoteSet();
    } else {
      await this.#remote; // a candidate may come before the description it belongs to
      await this.pc.addIceCandidate(payload);
    }
  }

  showVideo() {
    for (const track of this.stream?.getVideoTracks() ?? []) track.enabled = true;
  }

  close() {
    for (const track of this.stream?.getTracks() ?? []) track.stop();
    this.pc.close();
  }
}

export function CallPage(props: { me: NonNullable<Me> }) {
  const [intent, setIntent] = useState("pair programming");
  const [status, setStatus] = useState<"idle" | "queuing" | "in-call" | "ended">("idle");
  const [match, setMatch] = useState<Found | null>(null);
  const [left, setLeft] = useState(0);
  const [notice, setNotice] = useState("");
  const [videoAsked, setVideoAsked] = useState(false);
  const [reason, setReason] = useState("");
  const call = useRef<Call | null>(null);
  const remote = useRef<HTMLVideoElement>(null);
  const local = useRef<HTMLVideoElement>(null);

  useEffect(() => () => call.current?.close(), []);
  useEffect(() => {
    if (status !== "in-call" || !match) return;
    const timer = setInterval(() => setLeft(secondsUntil(match.endsAt)), 250);
    return () => clearInterval(timer);
  }, [status, match?.matchId]);

  useEvent("found-match", (event) => {
    call.current?.close();
    const started = new Call(event.data, (stream) => {
      if (remote.current) remote.current.srcObject = stream;
    });
    call.current = started;
    (globalThis as { conveneCall?: RTCPeerConnection }).conveneCall = started.pc;
    started.pc.onconnectionstatechange = () =>
      setNotice(`Call link: ${started.pc.connectionState}`);
    setMatch(event.data);
    setLeft(secondsUntil(event.data.endsAt));
    setStatus("in-call");
    setVideoAsked(false);
    queueMicrotask(() => {
      const stream = started.stream;
      if (local.current && stream) local.current.srcObject = stream;
    });
  });
  for (const type of ["offer", "answer", "ice-candidate"] as const) {
    useEvent(type, (event) => {
      if (call.current && event.data.matchId === call.current.match.matchId) {
        call.current.received(type, event.data.payload as unknown as RTCSessionDescriptionInit)
          .catch((error) => setNotice(`Signalling failed: ${explain(error)}`));
      }
    });
  }
  useEvent("call-ended", (event) => {
    if (event.data.matchId !== call.current?.match.matchId) return;
    call.current?.close();
    setReason(event.data.reason);
    setStatus("ended");
  });
  useEvent("video-request", () => setVideoAsked(true));
  useEvent("video-approved", () => {
    call.current?.showVideo();
    setNotice("Video is on.");
  });
  useEvent("match-connected", () => setNotice("You are now connected."));
  useEvent("connect-request", () => setNotice("Your peer would like to connect."));

  async function act(what: string, action: () => Promise<unknown>) {
    try {
      await action();
      if (what) setNotice(what);
    } catch (failure) {
      setNotice(explain(failure));
    }
  }
  const param = match ? { id: match.matchId } : { id: "" };

  return (
    <section aria-labelledby="call-title">
      <h1 id="call-title">Call</h1>
      {(status === "idle" || status === "ended") && (
        <form
          class="row"
          aria-label="Join a call"
          onSubmit={(event: Event) => {
            event.preventDefault();
            act("", async () => {
              await ok(api.api.match.queue.$post({ json: { intent } }));
              if (!call.current || status === "ended") setStatus("queuing");
            });
          }}
        >
          <Field label="Intent" name="intent" required value={intent} onValue={setIntent} />
          <button type="submit">Join</button>
        </form>
      )}
      {status === "ended" && <p role="status" data-testid="call-ended">Call ended ({reason}).</p>}
      {status === "queuing" && (
        <p role="status">
          Waiting for someone to talk about “{intent}”…{" "}
          <button
            type="button"
            onClick={() =>
              act("Left the queue.", async () => {
                await done(api.api.match.queue.$delete());
                setStatus("idle");
              })}
          >
            Leave
          </button>
        </p>
      )}
      {status === "in-call" && match && (
        <div class="card">
          <p>
            <Avatar id={match.peer.id} /> With <strong>{match.peer.name}</strong> about{" "}
            {match.intent} · <span data-testid="countdown" aria-live="off">{left}</span> s left
          </p>
          <div class="videos">
            <video ref={remote} autoplay playsinline aria-label="Your peer" />
            <video ref={local} autoplay playsinline muted aria-label="You" />
          </div>
          <div class="actions">
            <button
              type="button"
              onClick={() => act("", () => ok(api.api.match[":id"].end.$post({ param })))}
            >
              End call
            </button>
            <button
              type="button"
              onClick={() =>
                act(
                  "Asked for video.",
                  () => ok(api.api.match[":id"]["video-request"].$post({ param })),
                )}
            >
              Ask for video
            </button>
            {videoAsked && (
              <button
                type="button"
                onClick={() =>
                  act("", () => ok(api.api.match[":id"]["video-approve"].$post({ param })))}
              >
                Approve video
              </button>
            )}
            <button
              type="button"
              onClick={() =>
                act("Asked to connect.", () => ok(api.api.match[":id"].connect.$post({ param })))}
            >
              Add as a connection
            </button>
            <button
              type="button"
              onClick={() =>
                act(
                  "Blocked.",
                  () => done(api.api.blocks[":userId"].$post({ param: { userId: match.peer.id } })),
                )}
            >
              Block
            </button>
            <button
              type="button"
              onClick={() =>
                act("Reported.", () =>
                  ok(
                    api.api.reports.$post({
                      json: { userId: match.peer.id, reason: "During a call" },
                    }),
                  ))}
            >
              Report
            </button>
          </div>
        </div>
      )}
      {notice && <p role="status" data-testid="call-notice">{notice}</p>}
      <p class="meta">You: {props.me.name}</p>
    </section>
  );
}
