using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace OllamaContinuity.Gateway;

/// <summary>One application allowed to call the gateway: a name (for metrics and rate limits), its token and its default workflow.</summary>
internal sealed class ClientToken
{
    public required string Name { get; init; }
    public string? Workflow { get; init; }
    /// <summary>Requests per minute for this client; null: the gateway's default.</summary>
    public int? RatePerMinute { get; init; }
    internal required byte[] Hash { get; init; }
}

/// <summary>
/// The client tokens, from a JSON file (<c>--tokens-file</c>), from the gateway's standard input (<c>--tokens-stdin</c>,
/// how Start-AiGateway hands over tokens read from SecretManagement), or both:
/// <c>{"tokens":[{"name":"billing-app","token":"...","workflow":"billing","ratePerMinute":120}]}</c>.
/// An entry may carry <c>"sha256":"&lt;64 hex digits&gt;"</c> (the SHA-256 of the token's UTF-8 bytes) instead of
/// <c>"token"</c>: a hash-only file lets a service start without the plain tokens on disk.
/// Only SHA-256 hashes are kept in memory; a presented token is hashed and compared with every stored hash in
/// constant time (<see cref="CryptographicOperations.FixedTimeEquals"/>), never stopping at the first match.
/// Client names are unique across all sources (the rate limit is kept per name). No message ever quotes a token.
/// </summary>
internal sealed partial class ClientTokens
{
    public const int MinimumTokenLength = 20;

    /// <summary>The largest tokens document read from standard input.</summary>
    public const int MaxStdinBytes = 1024 * 1024;

    private readonly ClientToken[] _tokens;

    private ClientTokens(ClientToken[] tokens) => _tokens = tokens;

    public int Count => _tokens.Length;

    public IEnumerable<string> Names => _tokens.Select(t => t.Name);

    public static ClientTokens Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"The client tokens file '{path}' does not exist.");
        }

        return Parse(File.ReadAllBytes(path), $"the client tokens file '{path}'");
    }

    /// <summary>Reads one tokens document from a stream (the gateway's standard input) until its end.</summary>
    public static ClientTokens Read(Stream input, string source = "standard input (--tokens-stdin)")
    {
        using var buffer = new MemoryStream();
        var chunk = new byte[8192];
        int n;
        while ((n = input.Read(chunk, 0, chunk.Length)) > 0)
        {
            if (buffer.Length + n > MaxStdinBytes)
            {
                throw new InvalidOperationException($"The client tokens on {source} are larger than {MaxStdinBytes} bytes.");
            }

            buffer.Write(chunk, 0, n);
        }

        var bytes = buffer.ToArray();
        try
        {
            if (bytes.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
            {
                throw new InvalidOperationException($"No client tokens arrived on {source}: it was empty.");
            }

            return Parse(bytes, source);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(bytes);
            CryptographicOperations.ZeroMemory(buffer.GetBuffer());
        }
    }

    /// <summary>Parses a tokens document; <paramref name="source"/> names it in messages (which never quote its content).</summary>
    public static ClientTokens Parse(byte[] json, string source)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(json, new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        }
        catch (JsonException e)
        {
            // JsonException's own message can quote the text around the error: a token. Only the position is told.
            throw new InvalidOperationException($"The client tokens in {source} are not valid JSON (line {(e.LineNumber ?? 0) + 1}, byte {e.BytePositionInLine ?? 0}).");
        }

        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Object || !doc.RootElement.TryGetProperty("tokens", out var arr) || arr.ValueKind != JsonValueKind.Array)
            {
                throw new InvalidOperationException($"The client tokens in {source} have no \"tokens\" array.");
            }

            var list = new List<ClientToken>();
            var i = 0;
            foreach (var t in arr.EnumerateArray())
            {
                if (t.ValueKind != JsonValueKind.Object)
                {
                    throw new InvalidOperationException($"Client token #{i + 1} in {source} is not a JSON object.");
                }

                var name = t.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String && n.GetString() is { Length: > 0 } nv ? nv : $"client{i + 1}";
                var hasToken = t.TryGetProperty("token", out var v) && v.ValueKind == JsonValueKind.String;
                var hasHash = t.TryGetProperty("sha256", out var h) && h.ValueKind == JsonValueKind.String;
                byte[] hash;
                if (hasToken && hasHash)
                {
                    throw new InvalidOperationException($"Client token #{i + 1} ('{name}') in {source} has both \"token\" and \"sha256\": give one.");
                }
                else if (hasHash)
                {
                    var hex = h.GetString()!;
                    if (!Sha256Hex().IsMatch(hex))
                    {
                        throw new InvalidOperationException($"Client token #{i + 1} ('{name}') in {source}: \"sha256\" is not 64 hexadecimal digits.");
                    }

                    hash = Convert.FromHexString(hex);
                }
                else
                {
                    var token = hasToken ? v.GetString()! : "";
                    if (token.Length < MinimumTokenLength)
                    {
                        throw new InvalidOperationException($"Client token #{i + 1} ('{name}') in {source} is shorter than {MinimumTokenLength} characters.");
                    }

                    hash = SHA256.HashData(Encoding.UTF8.GetBytes(token));
                }

                string? workflow = t.TryGetProperty("workflow", out var w) && w.ValueKind == JsonValueKind.String ? w.GetString() : null;
                if (workflow is not null && !IsValidWorkflow(workflow))
                {
                    throw new InvalidOperationException($"Client token '{name}' in {source} has an invalid workflow name.");
                }

                int? rate = t.TryGetProperty("ratePerMinute", out var r) && r.ValueKind == JsonValueKind.Number && r.TryGetInt32(out var ri) && ri > 0 ? ri : null;
                list.Add(new ClientToken { Name = name, Workflow = workflow, RatePerMinute = rate, Hash = hash });
                i++;
            }

            if (list.Count == 0)
            {
                throw new InvalidOperationException($"The client tokens in {source} hold no token.");
            }

            return Combine(new ClientTokens(list.ToArray()));
        }
    }

    /// <summary>All the tokens of several sources (a file and standard input); a client name given twice is refused.</summary>
    public static ClientTokens Combine(params ClientTokens[] sources)
    {
        var all = sources.SelectMany(s => s._tokens).ToArray();
        var duplicate = all.GroupBy(t => t.Name, StringComparer.Ordinal).FirstOrDefault(g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidOperationException($"The client name '{duplicate.Key}' is given more than once: each application needs its own name (the rate limit is kept per name).");
        }

        return new ClientTokens(all);
    }

    /// <summary>The client whose token this is, or null. Takes the same time whichever token (if any) matches.</summary>
    public ClientToken? Find(string? presented)
    {
        if (string.IsNullOrEmpty(presented) || presented.Length > 4096)
        {
            return null;
        }

        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(presented));
        ClientToken? found = null;
        foreach (var t in _tokens)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, t.Hash))
            {
                found ??= t;
            }
        }

        return found;
    }

    /// <summary>A new random token (URL-safe, 43 characters of 256 bits).</summary>
    public static string NewToken() =>
        "oc_" + Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    /// <summary>Workflow names: letters, digits, dot, dash, underscore; 1 to 64 characters, starting with a letter or digit.</summary>
    public static bool IsValidWorkflow(string value) => WorkflowPattern().IsMatch(value);

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex WorkflowPattern();

    [GeneratedRegex("^[0-9A-Fa-f]{64}$", RegexOptions.CultureInvariant)]
    private static partial Regex Sha256Hex();
}
