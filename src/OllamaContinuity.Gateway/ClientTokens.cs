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
/// The client tokens, read from a JSON file:
/// <c>{"tokens":[{"name":"billing-app","token":"...","workflow":"billing","ratePerMinute":120}]}</c>.
/// Only SHA-256 hashes are kept in memory; a presented token is hashed and compared with every stored hash in
/// constant time (<see cref="CryptographicOperations.FixedTimeEquals"/>), never stopping at the first match.
/// </summary>
internal sealed partial class ClientTokens
{
    public const int MinimumTokenLength = 20;
    private readonly ClientToken[] _tokens;

    private ClientTokens(ClientToken[] tokens) => _tokens = tokens;

    public int Count => _tokens.Length;

    public static ClientTokens Load(string path)
    {
        if (!File.Exists(path))
        {
            throw new InvalidOperationException($"The client tokens file '{path}' does not exist.");
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(path), new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip });
        if (!doc.RootElement.TryGetProperty("tokens", out var arr) || arr.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidOperationException($"The client tokens file '{path}' has no \"tokens\" array.");
        }

        var list = new List<ClientToken>();
        var i = 0;
        foreach (var t in arr.EnumerateArray())
        {
            var name = t.TryGetProperty("name", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : $"client{i + 1}";
            var token = t.TryGetProperty("token", out var v) && v.ValueKind == JsonValueKind.String ? v.GetString()! : "";
            if (token.Length < MinimumTokenLength)
            {
                throw new InvalidOperationException($"Client token #{i + 1} ('{name}') in '{path}' is shorter than {MinimumTokenLength} characters.");
            }

            string? workflow = t.TryGetProperty("workflow", out var w) && w.ValueKind == JsonValueKind.String ? w.GetString() : null;
            if (workflow is not null && !IsValidWorkflow(workflow))
            {
                throw new InvalidOperationException($"Client token '{name}' has an invalid workflow name.");
            }

            int? rate = t.TryGetProperty("ratePerMinute", out var r) && r.ValueKind == JsonValueKind.Number && r.TryGetInt32(out var ri) && ri > 0 ? ri : null;
            list.Add(new ClientToken { Name = name, Workflow = workflow, RatePerMinute = rate, Hash = SHA256.HashData(Encoding.UTF8.GetBytes(token)) });
            i++;
        }

        if (list.Count == 0)
        {
            throw new InvalidOperationException($"The client tokens file '{path}' holds no token.");
        }

        return new ClientTokens(list.ToArray());
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
}
