using OllamaContinuity.TestSupport;

// Usage: OllamaContinuity.FakeServer --api openai|anthropic|ollama [--name NAME] [--fault ok|blackhole|reset|status:503|malformed|...]
//        [--tags model1,model2] (the models an Ollama fake lists in /api/tags)
// Prints "LISTENING <base-uri> <chat-uri>" and serves on 127.0.0.1 until standard input closes.
// GET /__stats answers {"hits":N} (chat requests so far).
var api = FakeApi.OpenAI;
var name = "fake";
var fault = FaultSpec.Ok;
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
            fault = ParseFault(args[i + 1]);
            break;
        default:
            Console.Error.WriteLine("unknown option " + args[i]);
            return 2;
    }
}

await using var server = FakeAiServer.Start(api, name);
server.Fault = fault;
if (tags is not null)
{
    server.Tags = tags;
}

Console.WriteLine($"LISTENING {server.BaseUri} {server.ChatUri}");
Console.Out.Flush();
await Console.In.ReadToEndAsync();
return 0;

static FaultSpec ParseFault(string s) => s.ToLowerInvariant() switch
{
    "ok" => FaultSpec.Ok,
    "blackhole" => new FaultSpec(FaultKind.Blackhole),
    "reset" => new FaultSpec(FaultKind.ResetBeforeHeaders),
    "malformed" => new FaultSpec(FaultKind.MalformedJson),
    "stall" => new FaultSpec(FaultKind.StallMidStream),
    "refusal" => new FaultSpec(FaultKind.Refusal),
    _ when s.StartsWith("status:", StringComparison.OrdinalIgnoreCase) => FaultSpec.Http(int.Parse(s[7..])),
    _ => throw new ArgumentException("unknown fault " + s),
};
