using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace OllamaContinuity.TestSupport;

/// <summary>The wire format a fake server speaks.</summary>
public enum FakeApi
{
    OpenAI,
    Anthropic,
    Ollama,
}

/// <summary>What the fake does with one chat request.</summary>
public enum FaultKind
{
    /// <summary>A correct answer in the API's wire format (streamed when the request asks).</summary>
    None,
    /// <summary>Read the request, then reset the connection before any header.</summary>
    ResetBeforeHeaders,
    /// <summary>Headers and part of the body, then a reset.</summary>
    ResetMidBody,
    /// <summary>Accept, read, and never answer.</summary>
    Blackhole,
    /// <summary>Wait <see cref="FaultSpec.Delay"/>, then answer normally.</summary>
    SlowFirstByte,
    /// <summary>Stream the first chunks, then stall forever.</summary>
    StallMidStream,
    /// <summary>An HTTP status with <see cref="FaultSpec.Body"/> and <see cref="FaultSpec.Headers"/>.</summary>
    Status,
    /// <summary>200 with a body that is not JSON (or, streaming, a chunk that is not JSON).</summary>
    MalformedJson,
    /// <summary>200 with a well-formed answer that has no text.</summary>
    EmptyAnswer,
    /// <summary>Stream chunks, then end the HTTP body cleanly without the protocol's terminator.</summary>
    StreamWithoutTerminator,
    /// <summary>The protocol's in-band error before any text (an error line after a 200).</summary>
    InBandStreamError,
    /// <summary>200 whose answer is a content-policy refusal (finish_reason content_filter / stop_reason refusal).</summary>
    Refusal,
    /// <summary>Stream <see cref="FaultSpec.Words"/> words, then reset the connection (a cut).</summary>
    CutAfterWords,
    /// <summary>Stream <see cref="FaultSpec.Words"/> words, then stall forever.</summary>
    StallAfterWords,
    /// <summary>Stream <see cref="FaultSpec.Words"/> words, then the protocol's in-band error event, then close.</summary>
    ErrorAfterWords,
    /// <summary>The whole answer word by word, with one unparseable event after word <see cref="FaultSpec.Words"/>.</summary>
    MalformedAmong,
    /// <summary>The whole answer and its finish reason, then a clean close without [DONE] / message_stop / done:true.</summary>
    FinishWithoutTerminator,
    /// <summary>OpenAI: a streamed refusal in <c>delta.refusal</c> (content null). Others: as <see cref="Refusal"/>.</summary>
    RefusalDelta,
    /// <summary>Reasoning/thinking deltas for <see cref="FaultSpec.Delay"/> (one every 100 ms), then the answer.</summary>
    ReasoningFirst,
    /// <summary>Serve <see cref="FaultSpec.Body"/> byte for byte with <see cref="FaultSpec.Status"/> (a wire fixture), streamed one event or line per chunk.</summary>
    Replay,
    /// <summary>A 200 stream whose first line never ends (a hostile server).</summary>
    EndlessLine,
    /// <summary>A 200 stream, Content-Encoding gzip, of gzip members that each expand to 16 MiB, without end (a compression bomb).</summary>
    GzipBomb,
}

public sealed record FaultSpec(FaultKind Kind)
{
    public int Status { get; init; } = 500;
    public string? Body { get; init; }
    public IReadOnlyDictionary<string, string>? Headers { get; init; }
    public TimeSpan Delay { get; init; }
    /// <summary>For the *AfterWords and MalformedAmong faults: how many words before the fault. For Replay: serve in pieces of this many bytes (0: one event or line per chunk).</summary>
    public int Words { get; init; }
    /// <summary>For <see cref="FaultKind.Replay"/>: the Content-Type sent.</summary>
    public string? ContentType { get; init; }

    public static FaultSpec Ok { get; } = new(FaultKind.None);

    /// <summary>Replays a file of /work/shared/wire-fixtures (or anywhere) with its status and content type.</summary>
    public static FaultSpec Fixture(string path, int status = 200, string? contentType = null) => new(FaultKind.Replay)
    {
        Status = status,
        Body = File.ReadAllText(path),
        ContentType = contentType ?? (path.EndsWith(".sse", StringComparison.Ordinal) ? "text/event-stream; charset=utf-8"
            : path.EndsWith(".ndjson", StringComparison.Ordinal) ? "application/x-ndjson" : "application/json; charset=utf-8"),
    };

    public static FaultSpec Http(int status, string? body = null, params (string Name, string Value)[] headers) =>
        new(FaultKind.Status) { Status = status, Body = body, Headers = headers.ToDictionary(h => h.Name, h => h.Value) };
}

/// <summary>One request as the fake received it.</summary>
public sealed record RecordedRequest(string Method, string Path, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public JsonNode? Json => Body.Length == 0 ? null : JsonNode.Parse(Body);
}

/// <summary>
/// A fake cloud or Ollama server on a real socket (127.0.0.1 by default), speaking the real wire format with
/// HTTP/1.1 keep-alive, and injecting real faults. <see cref="Script"/> picks the fault for the n-th chat request.
/// Ollama fakes also answer <c>GET /</c>, <c>/api/version</c> and <c>/api/tags</c>.
/// </summary>
public sealed class FakeAiServer : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentBag<TcpClient> _clients = [];
    private readonly Task _acceptLoop;
    private int _hits;
    private int _clientAborts;

    private FakeAiServer(FakeApi api, IPAddress address, int port, string name)
    {
        Api = api;
        Name = name;
        _listener = new TcpListener(address, port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        if (address.Equals(IPAddress.IPv6Any))
        {
            _listener.Server.DualMode = true; // IPv4 and IPv6 on one socket
        }
        _listener.Start(512);
        var ep = (IPEndPoint)_listener.LocalEndpoint;
        Port = ep.Port;
        var host = ep.Address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]" : ep.Address.ToString();
        BaseUri = new Uri($"http://{host}:{Port}");
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    public FakeApi Api { get; }
    public string Name { get; }
    public int Port { get; }
    public Uri BaseUri { get; }

    public Uri ChatUri => new(BaseUri, Api switch
    {
        FakeApi.OpenAI => "/v1/chat/completions",
        FakeApi.Anthropic => "/v1/messages",
        _ => "/api/chat",
    });

    /// <summary>Chat requests received so far.</summary>
    public int Hits => Volatile.Read(ref _hits);

    public ConcurrentQueue<RecordedRequest> Requests { get; } = new();

    /// <summary>Blackholed connections the client closed (cancellation reached the socket).</summary>
    public int ClientAborts => Volatile.Read(ref _clientAborts);

    /// <summary>The fault for the n-th chat request (1-based). Default: always a correct answer.</summary>
    public Func<int, FaultSpec> Script { get; set; } = _ => FaultSpec.Ok;

    /// <summary>Shortcut: the same fault for every request.</summary>
    public FaultSpec Fault { set => Script = _ => value; }

    /// <summary>Handles <c>GET /__fault/&lt;spec&gt;</c> (the process fake sets it); true when the spec was understood.</summary>
    public Func<string, bool>? Control { get; set; }

    /// <summary>The answer text; default: "<see cref="Name"/>: reply to &lt;last user message&gt;".</summary>
    public Func<string, string>? Answer { get; set; }

    /// <summary>The model name the fake reports.</summary>
    public string Model { get; set; } = "fake-model";

    /// <summary>Pause between streamed chunks.</summary>
    public TimeSpan ChunkDelay { get; set; } = TimeSpan.Zero;

    /// <summary>Answer 400 to a conversation that ends with an assistant message (a server that cannot continue a partial answer).</summary>
    public bool RejectTrailingAssistant { get; set; }

    /// <summary>Models listed by <c>/api/tags</c> (Ollama fakes).</summary>
    public string[] Tags { get; set; } = ["llama3.1:8b"];

    public static FakeAiServer Start(FakeApi api, string? name = null, IPAddress? address = null, int port = 0) =>
        new(api, address ?? IPAddress.Loopback, port, name ?? api.ToString().ToLowerInvariant());

    /// <summary>A loopback URL where nothing listens: connections are refused at once.</summary>
    public static Uri RefusedUri(string path = "/v1/chat/completions")
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return new Uri($"http://127.0.0.1:{port}{path}");
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            client.NoDelay = true;
            _clients.Add(client);
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            using (client)
            {
                var stream = client.GetStream();
                var reader = new BufferedStream(stream, 16 * 1024);
                while (!_stop.IsCancellationRequested)
                {
                    var request = await ReadRequestAsync(reader, _stop.Token);
                    if (request is null)
                    {
                        return;
                    }

                    if (!await RespondAsync(client, stream, request))
                    {
                        return;
                    }
                }
            }
        }
        catch (Exception e) when (e is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // The client went away or the test ended.
        }
    }

    /// <summary>Answers one request; false closes the connection.</summary>
    private async Task<bool> RespondAsync(TcpClient client, NetworkStream stream, RecordedRequest request)
    {
        if (request.Method == "GET" || request.Method == "HEAD")
        {
            return await RespondGetAsync(stream, request);
        }

        if (request.Path.Split('?')[0] != ChatUri.AbsolutePath)
        {
            await WriteSimpleAsync(stream, 404, "application/json", "{\"error\":\"not found\"}");
            return true;
        }

        Requests.Enqueue(request);
        var n = Interlocked.Increment(ref _hits);
        var fault = Script(n);
        var streaming = request.Json?["stream"]?.GetValue<bool>() ?? Api == FakeApi.Ollama; // Ollama streams by default
        var text = Answer?.Invoke(LastUser(request)) ?? $"{Name}: reply to {LastUser(request)}";
        var token = _stop.Token;

        if (RejectTrailingAssistant && LastRole(request) == "assistant")
        {
            await WriteSimpleAsync(stream, 400, "application/json", Api == FakeApi.Ollama
                ? "{\"error\":\"the last message must be from the user or a tool\"}"
                : DefaultError(400));
            return true;
        }

        switch (fault.Kind)
        {
            case FaultKind.Replay:
                return await ReplayAsync(stream, fault, token);
            case FaultKind.EndlessLine:
            case FaultKind.GzipBomb:
                await HostileAsync(stream, fault.Kind, token);
                return false;
            case FaultKind.ResetBeforeHeaders:
                Reset(client);
                return false;
            case FaultKind.Blackhole:
                // Never answer; notice when the client gives up and closes its socket.
                var sink = new byte[256];
                while (await stream.ReadAsync(sink, token) > 0)
                {
                }

                Interlocked.Increment(ref _clientAborts);
                return false;
            case FaultKind.SlowFirstByte:
                await Task.Delay(fault.Delay, token);
                break;
            case FaultKind.Status:
                var headers = fault.Headers ?? new Dictionary<string, string>();
                await WriteSimpleAsync(stream, fault.Status, "application/json", fault.Body ?? DefaultError(fault.Status), headers);
                return true;
            case FaultKind.ResetMidBody:
                var head = $"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 4096\r\n\r\n{{\"partial\":";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(head), token);
                await stream.FlushAsync(token);
                await Task.Delay(50, token);
                Reset(client);
                return false;
        }

        if (!streaming)
        {
            var body = fault.Kind switch
            {
                FaultKind.MalformedJson => "{\"choices\": [ this is not json",
                FaultKind.EmptyAnswer => Whole(""),
                FaultKind.Refusal => Refused(),
                _ => Whole(text),
            };
            await WriteSimpleAsync(stream, 200, "application/json", body);
            return true;
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"HTTP/1.1 200 OK\r\nContent-Type: {(Api == FakeApi.Ollama ? "application/x-ndjson" : "text/event-stream")}\r\nTransfer-Encoding: chunked\r\nCache-Control: no-cache\r\n\r\n"), token);
        await stream.FlushAsync(token);
        var pieces = fault.Words > 0 || fault.Kind is FaultKind.MalformedAmong or FaultKind.FinishWithoutTerminator or FaultKind.ReasoningFirst ? SplitWords(text) : Split(text);
        var lines = new List<string>(StreamPreamble());
        var cut = false;
        switch (fault.Kind)
        {
            case FaultKind.CutAfterWords:
                lines.AddRange(pieces.Take(fault.Words).Select(Delta));
                cut = true;
                break;
            case FaultKind.StallAfterWords:
                lines.AddRange(pieces.Take(fault.Words).Select(Delta));
                break;
            case FaultKind.ErrorAfterWords:
                lines.AddRange(pieces.Take(fault.Words).Select(Delta));
                lines.Add(StreamError());
                break;
            case FaultKind.MalformedAmong:
                lines.AddRange(pieces.Take(fault.Words).Select(Delta));
                lines.Add(Api == FakeApi.Ollama ? "{\"model\":\"x\",\"message\":{\"content\":\"tru\n" : "data: {\"id\":\"chatcmpl-fake\",\"choices\":[{\"delta\":{\"content\":\"tru\n\n");
                lines.AddRange(pieces.Skip(fault.Words).Select(Delta));
                lines.AddRange(StreamTerminator());
                break;
            case FaultKind.FinishWithoutTerminator:
                lines.AddRange(pieces.Select(Delta));
                lines.AddRange(StreamTerminator().Take(Api switch { FakeApi.OpenAI => 1, FakeApi.Anthropic => 2, _ => 0 }));
                if (Api == FakeApi.Ollama)
                {
                    lines.Add(StreamTerminator().Single().Replace("\"done\":true", "\"done\":false")); // no done:true: an Ollama stream has no finish reason without it
                }

                break;
            case FaultKind.RefusalDelta:
                lines.AddRange(Api == FakeApi.OpenAI
                    ? new[] { "I'm", " sorry,", " I can't", " help with that." }.Select(r => "data: " + new JsonObject
                    {
                        ["id"] = "chatcmpl-fake", ["object"] = "chat.completion.chunk", ["model"] = Model,
                        ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = null, ["refusal"] = r }, ["finish_reason"] = null }),
                    }.ToJsonString() + "\n\n")
                    : [StreamRefusal()]);
                lines.AddRange(StreamTerminator());
                break;
            case FaultKind.ReasoningFirst:
                for (var elapsed = TimeSpan.Zero; elapsed < fault.Delay; elapsed += TimeSpan.FromMilliseconds(100))
                {
                    lines.Add(Reasoning(" thinking"));
                }

                lines.AddRange(pieces.Select(Delta));
                lines.AddRange(StreamTerminator());
                break;
            case FaultKind.MalformedJson:
                lines.Add(Api == FakeApi.Ollama ? "{not json\n" : "data: {not json\n\n");
                break;
            case FaultKind.EmptyAnswer:
                lines.AddRange(StreamTerminator());
                break;
            case FaultKind.InBandStreamError:
                // Before any text, as when a model fails to load.
                lines.Add(StreamError());
                break;
            case FaultKind.Refusal:
                lines.Add(StreamRefusal());
                break;
            case FaultKind.StreamWithoutTerminator:
                lines.AddRange(pieces.Select(Delta));
                break;
            case FaultKind.StallMidStream:
                lines.AddRange(pieces.Take(2).Select(Delta));
                break;
            default:
                lines.AddRange(pieces.Select(Delta));
                lines.AddRange(StreamTerminator());
                break;
        }

        foreach (var line in lines)
        {
            await WriteChunkAsync(stream, line, token);
            var pause = fault.Kind == FaultKind.ReasoningFirst && line.Contains(" thinking", StringComparison.Ordinal) ? TimeSpan.FromMilliseconds(100) : ChunkDelay;
            if (pause > TimeSpan.Zero)
            {
                await Task.Delay(pause, token);
            }
        }

        if (cut)
        {
            await Task.Delay(20, token);
            Reset(client);
            return false;
        }

        if (fault.Kind is FaultKind.StallMidStream or FaultKind.StallAfterWords)
        {
            await Task.Delay(Timeout.Infinite, token);
        }

        await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), token);
        await stream.FlushAsync(token);
        return true;
    }

    private async Task<bool> RespondGetAsync(NetworkStream stream, RecordedRequest request)
    {
        if (request.Path == "/__stats")
        {
            await WriteSimpleAsync(stream, 200, "application/json", $"{{\"hits\":{Hits}}}");
            return true;
        }

        if (request.Path == "/__requests")
        {
            // The bodies of the chat requests received so far, in order (tests assert on what really arrived).
            var bodies = new JsonArray(Requests.Select(r => (JsonNode?)JsonValue.Create(r.Body)).ToArray());
            await WriteSimpleAsync(stream, 200, "application/json", bodies.ToJsonString());
            return true;
        }

        if (request.Path.StartsWith("/__fault/", StringComparison.Ordinal) && Control is { } control)
        {
            // Changes the fault of the following requests (the process fake's --fault syntax).
            var ok = control(Uri.UnescapeDataString(request.Path["/__fault/".Length..]));
            await WriteSimpleAsync(stream, ok ? 200 : 400, "application/json", ok ? "{\"ok\":true}" : "{\"ok\":false}");
            return true;
        }

        if (Api != FakeApi.Ollama)
        {
            await WriteSimpleAsync(stream, 404, "application/json", "{\"error\":\"not found\"}");
            return true;
        }

        switch (request.Path.Split('?')[0])
        {
            case "/":
                await WriteSimpleAsync(stream, 200, "text/plain; charset=utf-8", "Ollama is running", head: request.Method == "HEAD");
                break;
            case "/api/version":
                await WriteSimpleAsync(stream, 200, "application/json", "{\"version\":\"0.33.0\"}", head: request.Method == "HEAD");
                break;
            case "/api/tags":
            case "/api/ps":
                var models = new JsonArray(Tags.Select(t => (JsonNode)new JsonObject
                {
                    ["name"] = t, ["model"] = t, ["modified_at"] = "2026-10-01T00:00:00Z", ["size"] = 4_920_753_328L,
                    ["digest"] = "sha256:" + new string('0', 64), ["details"] = new JsonObject { ["family"] = "llama", ["parameter_size"] = "8.0B" },
                }).ToArray());
                await WriteSimpleAsync(stream, 200, "application/json", new JsonObject { ["models"] = models }.ToJsonString());
                break;
            default:
                await WriteSimpleAsync(stream, 404, "text/plain", "404 page not found");
                break;
        }

        return true;
    }

    private string Whole(string text) => Api switch
    {
        FakeApi.OpenAI => new JsonObject
        {
            ["id"] = "chatcmpl-fake", ["object"] = "chat.completion", ["created"] = 1_790_000_000, ["model"] = Model,
            ["choices"] = new JsonArray(new JsonObject
            {
                ["index"] = 0, ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text }, ["finish_reason"] = "stop",
            }),
            ["usage"] = new JsonObject { ["prompt_tokens"] = 7, ["completion_tokens"] = 11, ["total_tokens"] = 18 },
        }.ToJsonString(),
        FakeApi.Anthropic => new JsonObject
        {
            ["id"] = "msg_fake", ["type"] = "message", ["role"] = "assistant", ["model"] = Model,
            ["content"] = new JsonArray(new JsonObject { ["type"] = "text", ["text"] = text }),
            ["stop_reason"] = "end_turn", ["usage"] = new JsonObject { ["input_tokens"] = 7, ["output_tokens"] = 11 },
        }.ToJsonString(),
        _ => new JsonObject
        {
            ["model"] = Model, ["created_at"] = "2026-11-24T00:00:00Z",
            ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = text },
            ["done"] = true, ["done_reason"] = "stop", ["total_duration"] = 1000, ["prompt_eval_count"] = 7, ["eval_count"] = 11,
        }.ToJsonString(),
    };

    private string Refused() => Api switch
    {
        FakeApi.OpenAI => Whole("").Replace("\"finish_reason\":\"stop\"", "\"finish_reason\":\"content_filter\""),
        FakeApi.Anthropic => Whole("").Replace("\"stop_reason\":\"end_turn\"", "\"stop_reason\":\"refusal\""),
        _ => Whole(""),
    };

    private IEnumerable<string> StreamPreamble() => Api switch
    {
        FakeApi.Anthropic =>
        [
            $"event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{\"id\":\"msg_fake\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"{Model}\",\"content\":[],\"usage\":{{\"input_tokens\":7,\"output_tokens\":1}}}}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: ping\ndata: {\"type\": \"ping\"}\n\n",
        ],
        _ => [],
    };

    private string Delta(string piece) => Api switch
    {
        FakeApi.OpenAI => "data: " + new JsonObject
        {
            ["id"] = "chatcmpl-fake", ["object"] = "chat.completion.chunk", ["model"] = Model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = piece }, ["finish_reason"] = null }),
        }.ToJsonString() + "\n\n",
        FakeApi.Anthropic => "event: content_block_delta\ndata: " + new JsonObject
        {
            ["type"] = "content_block_delta", ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "text_delta", ["text"] = piece },
        }.ToJsonString() + "\n\n",
        _ => new JsonObject
        {
            ["model"] = Model, ["created_at"] = "2026-11-24T00:00:00Z", ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = piece }, ["done"] = false,
        }.ToJsonString() + "\n",
    };

    private IEnumerable<string> StreamTerminator() => Api switch
    {
        FakeApi.OpenAI =>
        [
            "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ],
        FakeApi.Anthropic =>
        [
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":11}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        ],
        _ => [$"{{\"model\":\"{Model}\",\"created_at\":\"2026-11-24T00:00:00Z\",\"message\":{{\"role\":\"assistant\",\"content\":\"\"}},\"done\":true,\"done_reason\":\"stop\",\"total_duration\":1000,\"prompt_eval_count\":7,\"eval_count\":11}}\n"],
    };

    private string StreamError() => Api switch
    {
        FakeApi.OpenAI => "data: {\"error\":{\"message\":\"The server had an error while processing your request.\",\"type\":\"server_error\",\"code\":null}}\n\n",
        FakeApi.Anthropic => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n",
        _ => "{\"error\":\"an error was encountered while running the model: unexpected EOF\"}\n",
    };

    private string StreamRefusal() => Api switch
    {
        FakeApi.OpenAI => "data: {\"id\":\"chatcmpl-fake\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"content_filter\"}]}\n\n",
        FakeApi.Anthropic => "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"refusal\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":0}}\n\n",
        _ => "{\"error\":\"refused\"}\n",
    };

    private string Reasoning(string piece) => Api switch
    {
        FakeApi.OpenAI => "data: " + new JsonObject
        {
            ["id"] = "chatcmpl-fake", ["object"] = "chat.completion.chunk", ["model"] = Model,
            ["choices"] = new JsonArray(new JsonObject { ["index"] = 0, ["delta"] = new JsonObject { ["content"] = "", ["reasoning"] = piece }, ["finish_reason"] = null }),
        }.ToJsonString() + "\n\n",
        FakeApi.Anthropic => "event: content_block_delta\ndata: " + new JsonObject
        {
            ["type"] = "content_block_delta", ["index"] = 0, ["delta"] = new JsonObject { ["type"] = "thinking_delta", ["thinking"] = piece },
        }.ToJsonString() + "\n\n",
        _ => new JsonObject
        {
            ["model"] = Model, ["created_at"] = "2026-11-24T00:00:00Z", ["message"] = new JsonObject { ["role"] = "assistant", ["content"] = "", ["thinking"] = piece }, ["done"] = false,
        }.ToJsonString() + "\n",
    };

    /// <summary>Writes a fixture: a body with Content-Length when it is not a stream, else one chunk per SSE event or NDJSON line.</summary>
    private async Task<bool> ReplayAsync(NetworkStream stream, FaultSpec fault, CancellationToken token)
    {
        var body = fault.Body ?? "";
        var contentType = fault.ContentType ?? "application/json";
        var streamed = contentType.StartsWith("text/event-stream", StringComparison.Ordinal) || contentType.StartsWith("application/x-ndjson", StringComparison.Ordinal);
        if (!streamed)
        {
            await WriteSimpleAsync(stream, fault.Status, contentType, body, fault.Headers);
            return true;
        }

        await stream.WriteAsync(Encoding.ASCII.GetBytes($"HTTP/1.1 {fault.Status} {Reason(fault.Status)}\r\nContent-Type: {contentType}\r\nTransfer-Encoding: chunked\r\n\r\n"), token);
        if (fault.Words > 0)
        {
            // Fixed-size TCP pieces, as a proxy may cut them: lines and UTF-8 sequences split mid-way.
            var bytes = Encoding.UTF8.GetBytes(body);
            for (var i = 0; i < bytes.Length; i += fault.Words)
            {
                var n = Math.Min(fault.Words, bytes.Length - i);
                await stream.WriteAsync(Encoding.ASCII.GetBytes($"{n:X}\r\n"), token);
                await stream.WriteAsync(bytes.AsMemory(i, n), token);
                await stream.WriteAsync("\r\n"u8.ToArray(), token);
                await stream.FlushAsync(token);
            }

            await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), token);
            await stream.FlushAsync(token);
            return true;
        }

        var separator = contentType.StartsWith("text/event-stream", StringComparison.Ordinal) ? "\n\n" : "\n";
        var at = 0;
        while (at < body.Length)
        {
            var end = body.IndexOf(separator, at, StringComparison.Ordinal);
            end = end < 0 ? body.Length : end + separator.Length;
            await WriteChunkAsync(stream, body[at..end], token);
            at = end;
            if (ChunkDelay > TimeSpan.Zero)
            {
                await Task.Delay(ChunkDelay, token);
            }
        }

        await stream.WriteAsync("0\r\n\r\n"u8.ToArray(), token);
        await stream.FlushAsync(token);
        return true;
    }

    private static readonly Lazy<byte[]> BombMember = new(() =>
    {
        using var ms = new MemoryStream();
        using (var z = new System.IO.Compression.GZipStream(ms, System.IO.Compression.CompressionLevel.SmallestSize))
        {
            var newlines = new byte[1024 * 1024];
            Array.Fill(newlines, (byte)'\n');
            for (var i = 0; i < 16; i++)
            {
                z.Write(newlines);
            }
        }

        return ms.ToArray();
    });

    /// <summary>Hostile 200 streams that never end: one endless line, or a gzip bomb of blank lines. Until the client goes away.</summary>
    private async Task HostileAsync(NetworkStream stream, FaultKind kind, CancellationToken token)
    {
        var gzip = kind == FaultKind.GzipBomb;
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"HTTP/1.1 200 OK\r\nContent-Type: {(Api == FakeApi.Ollama ? "application/x-ndjson" : "text/event-stream")}\r\n{(gzip ? "Content-Encoding: gzip\r\n" : "")}Transfer-Encoding: chunked\r\n\r\n"), token);
        byte[] piece;
        if (gzip)
        {
            piece = BombMember.Value;
        }
        else
        {
            var start = Api == FakeApi.Ollama ? "{\"model\":\"x\",\"message\":{\"role\":\"assistant\",\"content\":\"" : "data: {\"choices\":[{\"delta\":{\"content\":\"";
            await WriteChunkAsync(stream, start, token);
            piece = Encoding.ASCII.GetBytes(new string('A', 64 * 1024));
        }

        var head = Encoding.ASCII.GetBytes($"{piece.Length:X}\r\n");
        while (!token.IsCancellationRequested)
        {
            await stream.WriteAsync(head, token);
            await stream.WriteAsync(piece, token);
            await stream.WriteAsync("\r\n"u8.ToArray(), token);
        }
    }

    private string DefaultError(int status) => Api switch
    {
        FakeApi.Anthropic => $"{{\"type\":\"error\",\"error\":{{\"type\":\"{(status == 529 ? "overloaded_error" : status == 429 ? "rate_limit_error" : status == 401 ? "authentication_error" : status == 400 ? "invalid_request_error" : "api_error")}\",\"message\":\"fake {status}\"}},\"request_id\":\"req_fake\"}}",
        FakeApi.Ollama => $"{{\"error\":\"fake {status}\"}}",
        _ => $"{{\"error\":{{\"message\":\"fake {status}\",\"type\":\"{(status == 429 ? "requests" : "server_error")}\",\"param\":null,\"code\":null}}}}",
    };

    private static string[] Split(string text)
    {
        var pieces = new List<string>();
        for (var i = 0; i < text.Length; i += 8)
        {
            pieces.Add(text.Substring(i, Math.Min(8, text.Length - i)));
        }

        return pieces.Count == 0 ? [""] : pieces.ToArray();
    }

    private static string[] SplitWords(string text)
    {
        var words = text.Split(' ');
        return words.Select((w, i) => i < words.Length - 1 ? w + " " : w).ToArray();
    }

    private static string? LastRole(RecordedRequest request) =>
        request.Json?["messages"] is JsonArray { Count: > 0 } m ? m[^1]?["role"]?.GetValue<string>() : null;

    private static string LastUser(RecordedRequest request)
    {
        if (request.Json?["messages"] is JsonArray messages)
        {
            for (var i = messages.Count - 1; i >= 0; i--)
            {
                if (messages[i]?["role"]?.GetValue<string>() == "user")
                {
                    return messages[i]?["content"]?.GetValue<string>() ?? "";
                }
            }
        }

        return "";
    }

    private static void Reset(TcpClient client)
    {
        client.Client.LingerState = new LingerOption(true, 0);
        client.Client.Close();
    }

    private async Task WriteChunkAsync(NetworkStream stream, string data, CancellationToken token)
    {
        var bytes = Encoding.UTF8.GetBytes(data);
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"{bytes.Length:X}\r\n"), token);
        await stream.WriteAsync(bytes, token);
        await stream.WriteAsync("\r\n"u8.ToArray(), token);
        await stream.FlushAsync(token);
    }

    private async Task WriteSimpleAsync(NetworkStream stream, int status, string contentType, string body, IReadOnlyDictionary<string, string>? headers = null, bool head = false)
    {
        var bytes = Encoding.UTF8.GetBytes(body);
        var sb = new StringBuilder($"HTTP/1.1 {status} {Reason(status)}\r\nContent-Type: {contentType}\r\nContent-Length: {bytes.Length}\r\n");
        foreach (var (k, v) in headers ?? new Dictionary<string, string>())
        {
            sb.Append(k).Append(": ").Append(v).Append("\r\n");
        }

        sb.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(sb.ToString()), _stop.Token);
        if (!head)
        {
            await stream.WriteAsync(bytes, _stop.Token);
        }

        await stream.FlushAsync(_stop.Token);
    }

    private static string Reason(int status) => status switch
    {
        200 => "OK", 400 => "Bad Request", 401 => "Unauthorized", 403 => "Forbidden", 404 => "Not Found", 408 => "Request Timeout",
        409 => "Conflict", 413 => "Payload Too Large", 422 => "Unprocessable Entity", 425 => "Too Early", 429 => "Too Many Requests",
        500 => "Internal Server Error", 502 => "Bad Gateway", 503 => "Service Unavailable", 504 => "Gateway Timeout", 529 => "Overloaded",
        _ => "Status",
    };

    /// <summary>Reads one HTTP/1.1 request (head and Content-Length body); null when the client closed the connection.</summary>
    public static async Task<RecordedRequest?> ReadRequestAsync(Stream stream, CancellationToken token)
    {
        var header = new List<byte>(1024);
        var one = new byte[1];
        while (true)
        {
            var n = await stream.ReadAsync(one, token);
            if (n == 0)
            {
                return null;
            }

            header.Add(one[0]);
            if (header.Count >= 4 && header[^1] == '\n' && header[^2] == '\r' && header[^3] == '\n' && header[^4] == '\r')
            {
                break;
            }

            if (header.Count > 64 * 1024)
            {
                return null;
            }
        }

        var lines = Encoding.ASCII.GetString(header.ToArray()).Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var first = lines[0].Split(' ');
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            if (colon > 0)
            {
                headers[line[..colon].Trim()] = line[(colon + 1)..].Trim();
            }
        }

        var body = Array.Empty<byte>();
        if (headers.TryGetValue("Content-Length", out var cl) && int.TryParse(cl, out var length) && length > 0)
        {
            body = new byte[length];
            await stream.ReadExactlyAsync(body, token);
        }

        return new RecordedRequest(first[0], first.Length > 1 ? first[1] : "/", headers, Encoding.UTF8.GetString(body));
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        foreach (var c in _clients)
        {
            c.Dispose();
        }

        try
        {
            await _acceptLoop;
        }
        catch (Exception)
        {
            // stopping
        }

        _stop.Dispose();
    }
}
