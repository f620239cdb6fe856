using OllamaContinuity.TestSupport;

// Usage: OllamaContinuity.FakeServer --api openai|anthropic|ollama [--name NAME] [--fault ok|blackhole|reset|status:503|malformed|...]
//        [--answer TEXT | --words N] [--reject-assistant true] [--chunk-delay-ms N]
// Faults: ok, blackhole, reset, malformed, stall, refusal, refusal-delta, no-terminator, endless-line, gzip-bomb,
//         status:N, cut:N / stall:N / error:N (after N words), malformed-among:N, reasoning:MS, replay:FILE[:STATUS]
// A fault may be a sequence, one per chat request, the last repeating: "status:429@retry-after=2,ok" (headers after @).
//        [--tags model1,model2] (the models an Ollama fake lists in /api/tags)
// Prints "LISTENING <base-uri> <chat-uri>" and serves on 127.0.0.1 until standard input closes.
// GET /__stats answers {"hits":N} (chat requests so far); GET /__requests the bodies received; GET /__fault/<fault>
// changes the fault from the next request on (the sequence restarts there).
var api = FakeApi.OpenAI;
var name = "fake";
FaultSpec[] faults = [FaultSpec.Ok];
string? answer = null;
var rejectAssistant = false;
var chunkDelay = TimeSpan.Zero;
string[]? tags = null;
for (var i = 0; i + 1 < args.Length; i += 2)
{
    switch (args[i])
    {
        case "--api":
            api = Enum.Parse<FakeApi>(args[i + 1], ignoreCase: true);
            break;
        case "--name":
            name = args[i + 1];
            break;
        case "--tags":
            tags = args[i + 1].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            break;
        case "--fault":
            faults = ParseSequence(args[i + 1]);
            break;
        case "--answer":
            answer = args[i + 1];
            break;
        case "--words":
            answer = string.Join(" ", Enumerable.Range(1, int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture)).Select(n => "w" + n));
            break;
        case "--reject-assistant":
            rejectAssistant = bool.Parse(args[i + 1]);
            break;
        case "--chunk-delay-ms":
            chunkDelay = TimeSpan.FromMilliseconds(int.Parse(args[i + 1], System.Globalization.CultureInfo.InvariantCulture));
            break;
        default:
            Console.Error.WriteLine("unknown option " + args[i]);
            return 2;
    }
}

await using var server = FakeAiServer.Start(api, name);
UseSequence(server, faults);
server.Control = spec =>
{
    try
    {
        UseSequence(server, ParseSequence(spec));
        return true;
    }
    catch (Exception e) when (e is ArgumentException or FormatException)
    {
        return false;
    }
};
server.RejectTrailingAssistant = rejectAssistant;
server.ChunkDelay = chunkDelay;
if (answer is not null)
{
    server.Answer = _ => answer;
}
if (tags is not null)
{
    server.Tags = tags;
}

Console.WriteLine($"LISTENING {server.BaseUri} {server.ChatUri}");
Console.Out.Flush();
await Console.In.ReadToEndAsync();
return 0;

static void UseSequence(FakeAiServer server, FaultSpec[] sequence)
{
    var offset = server.Hits;
    server.Script = n => sequence[Math.Min(n - offset, sequence.Length) - 1];
}

static FaultSpec[] ParseSequence(string s) => s.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).Select(ParseWithHeaders).ToArray() is { Length: > 0 } a
    ? a
    : throw new ArgumentException("empty fault");

static FaultSpec ParseWithHeaders(string s)
{
    var parts = s.Split('@');
    var spec = ParseFault(parts[0]);
    if (parts.Length == 1)
    {
        return spec;
    }

    var headers = parts.Skip(1).Select(h => h.Split('=', 2)).ToDictionary(h => h[0], h => h.Length > 1 ? h[1] : "");
    return spec with { Headers = headers };
}

static FaultSpec ParseFault(string s) => s.ToLowerInvariant() switch
{
    "ok" => FaultSpec.Ok,
    "blackhole" => new FaultSpec(FaultKind.Blackhole),
    "reset" => new FaultSpec(FaultKind.ResetBeforeHeaders),
    "malformed" => new FaultSpec(FaultKind.MalformedJson),
    "stall" => new FaultSpec(FaultKind.StallMidStream),
    "refusal" => new FaultSpec(FaultKind.Refusal),
    "refusal-delta" => new FaultSpec(FaultKind.RefusalDelta),
    "no-terminator" => new FaultSpec(FaultKind.FinishWithoutTerminator),
    "endless-line" => new FaultSpec(FaultKind.EndlessLine),
    "gzip-bomb" => new FaultSpec(FaultKind.GzipBomb),
    _ when s.StartsWith("status:", StringComparison.OrdinalIgnoreCase) => FaultSpec.Http(int.Parse(s[7..])),
    _ when s.StartsWith("cut:", StringComparison.OrdinalIgnoreCase) => new FaultSpec(FaultKind.CutAfterWords) { Words = int.Parse(s[4..]) },
    _ when s.StartsWith("stall:", StringComparison.OrdinalIgnoreCase) => new FaultSpec(FaultKind.StallAfterWords) { Words = int.Parse(s[6..]) },
    _ when s.StartsWith("error:", StringComparison.OrdinalIgnoreCase) => new FaultSpec(FaultKind.ErrorAfterWords) { Words = int.Parse(s[6..]) },
    _ when s.StartsWith("malformed-among:", StringComparison.OrdinalIgnoreCase) => new FaultSpec(FaultKind.MalformedAmong) { Words = int.Parse(s[16..]) },
    _ when s.StartsWith("reasoning:", StringComparison.OrdinalIgnoreCase) => new FaultSpec(FaultKind.ReasoningFirst) { Delay = TimeSpan.FromMilliseconds(int.Parse(s[10..])) },
    _ when s.StartsWith("replay:", StringComparison.OrdinalIgnoreCase) => Replay(s[7..]),
    _ => throw new ArgumentException("unknown fault " + s),
};

// replay:FILE or replay:FILE:STATUS (a file of /work/shared/wire-fixtures).
static FaultSpec Replay(string spec)
{
    var colon = spec.LastIndexOf(':');
    return colon > 0 && int.TryParse(spec[(colon + 1)..], out var status) ? FaultSpec.Fixture(spec[..colon], status) : FaultSpec.Fixture(spec);
}
