using System.Collections;
using System.Globalization;
using System.Net;
using System.Security;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using OllamaContinuity.Failover;

namespace OllamaContinuity.Gateway;

/// <summary>
/// One client token for the gateway, as read from a secret store (SecretManagement): the application's name, its
/// token, its default workflow and its own request rate. <see cref="ToString"/> never shows the token.
/// </summary>
public sealed record GatewayClientToken
{
    /// <summary>The shortest token the gateway accepts (the gateway's own rule, checked here first).</summary>
    public const int MinimumLength = 20;

    public required string Name { get; init; }
    public required string Token { get; init; }
    public string? Workflow { get; init; }
    public int? RatePerMinute { get; init; }

    /// <summary>The SHA-256 of the token's UTF-8 bytes, in lower-case hex (what a hash-only tokens file holds).</summary>
    public string Sha256Hex => Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(Token))).ToLowerInvariant();

    public override string ToString() => $"GatewayClientToken {{ Name = {Name}, Workflow = {Workflow}, RatePerMinute = {RatePerMinute} }}";
}

/// <summary>Why a secret could not become a client token (the cmdlets turn each into its own ErrorId).</summary>
public enum GatewayClientTokenProblem
{
    /// <summary>The secret's value is not a token, a token record or JSON object with a "token", or a credential.</summary>
    Invalid,

    /// <summary>The token is shorter than <see cref="GatewayClientToken.MinimumLength"/> characters.</summary>
    TooShort,

    /// <summary>Two secrets name the same client.</summary>
    DuplicateName,
}

/// <summary>A secret that cannot serve as a client token; the message names the secret, never its value.</summary>
public sealed class GatewayClientTokenException(string secretName, GatewayClientTokenProblem problem, string message) : FormatException(message)
{
    public string SecretName { get; } = secretName;
    public GatewayClientTokenProblem Problem { get; } = problem;
}

/// <summary>
/// Client tokens from secrets, and the documents that hand them to the gateway (the engine side shared by
/// Start-AiGateway and Install-AiGateway).
/// <para>A secret holds either the token itself (a string), or a record with the keys <c>token</c> (required),
/// <c>name</c> (the client's name; the default value is the secret's name), <c>workflow</c> and <c>ratePerMinute</c>:
/// a hashtable, or a string holding that JSON object (a string starting with <c>{</c>).</para>
/// </summary>
public static partial class GatewayClientTokens
{
    /// <summary>A client token from a secret whose value is a string: the token, or a JSON object.</summary>
    public static GatewayClientToken FromSecret(string secretName, string value)
    {
        var trimmed = value.Trim();
        if (!trimmed.StartsWith('{'))
        {
            return Make(secretName, secretName, trimmed, null, null);
        }

        try
        {
            using var doc = JsonDocument.Parse(trimmed);
            var d = new Dictionary<string, object?>(StringComparer.OrdinalIgnoreCase);
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                d[p.Name] = p.Value.ValueKind switch
                {
                    JsonValueKind.String => p.Value.GetString(),
                    JsonValueKind.Number => p.Value.TryGetInt64(out var l) ? (object)l : p.Value.GetDouble(),
                    JsonValueKind.Null => null,
                    _ => p.Value.ValueKind,
                };
            }

            return FromSecret(secretName, d);
        }
        catch (JsonException)
        {
            // Never the parser's message: it can quote the text (the token).
            throw new GatewayClientTokenException(secretName, GatewayClientTokenProblem.Invalid,
                $"The secret '{secretName}' starts with '{{' but is not a JSON object: a client token secret holds the token, or a JSON object or hashtable with \"token\" (and optionally \"name\", \"workflow\", \"ratePerMinute\").");
        }
    }

    /// <summary>A client token from a secret whose value is a record (a hashtable): token, name, workflow, ratePerMinute.</summary>
    public static GatewayClientToken FromSecret(string secretName, IDictionary value)
    {
        string? name = null, token = null, workflow = null;
        int? rate = null;
        foreach (DictionaryEntry e in value)
        {
            var key = e.Key?.ToString() ?? "";
            var v = e.Value is SecureString ss ? new NetworkCredential("", ss).Password : e.Value;
            switch (key.ToLowerInvariant())
            {
                case "token":
                    token = v as string ?? throw Invalid(secretName, "its \"token\" is not a string");
                    break;
                case "name":
                    name = v is null ? null : v as string ?? throw Invalid(secretName, "its \"name\" is not a string");
                    break;
                case "workflow":
                    workflow = v is null ? null : v as string ?? throw Invalid(secretName, "its \"workflow\" is not a string");
                    break;
                case "rateperminute":
                    rate = v switch
                    {
                        null => null,
                        int i when i > 0 => i,
                        long l when l > 0 && l <= int.MaxValue => (int)l,
                        string s when int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var si) && si > 0 => si,
                        _ => throw Invalid(secretName, "its \"ratePerMinute\" is not a positive whole number"),
                    };
                    break;
                default:
                    throw Invalid(secretName, $"it has the unknown key '{Truncate(key)}'");
            }
        }

        if (token is null)
        {
            throw Invalid(secretName, "it has no \"token\"");
        }

        return Make(secretName, string.IsNullOrWhiteSpace(name) ? secretName : name.Trim(), token, workflow, rate);
    }

    /// <summary>A client token from a credential secret: the user name names the client, the password is the token.</summary>
    public static GatewayClientToken FromCredential(string secretName, string userName, SecureString password) =>
        Make(secretName, string.IsNullOrWhiteSpace(userName) ? secretName : userName.Trim(), new NetworkCredential("", password).Password, null, null);

    /// <summary>Refuses two tokens with the same client name (the gateway keeps its rate limit per name).</summary>
    public static void EnsureDistinctNames(IEnumerable<(string SecretName, GatewayClientToken Token)> tokens)
    {
        var seen = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (secret, t) in tokens)
        {
            if (!seen.TryAdd(t.Name, secret))
            {
                throw new GatewayClientTokenException(secret, GatewayClientTokenProblem.DuplicateName,
                    $"The secrets '{seen[t.Name]}' and '{secret}' both name the client '{t.Name}': give each application its own name.");
            }
        }
    }

    /// <summary>
    /// The tokens document the gateway reads from its standard input (<c>--tokens-stdin</c>), UTF-8:
    /// <c>{"tokens":[{"name":..,"token":..,"workflow":..,"ratePerMinute":..}]}</c>. The caller zeroes it once written.
    /// </summary>
    public static byte[] ToStdinDocument(IEnumerable<GatewayClientToken> tokens) => Document(tokens, hashed: false);

    /// <summary>
    /// The hash-only tokens document (<c>"sha256"</c> in place of <c>"token"</c>), which the gateway reads with
    /// <c>--tokens-file</c>: for a service (Install-AiGateway), which cannot be handed its tokens over standard input,
    /// nothing on disk then reveals a token.
    /// </summary>
    public static byte[] ToHashedDocument(IEnumerable<GatewayClientToken> tokens) => Document(tokens, hashed: true);

    /// <summary>Writes the hash-only tokens document to an owner-only file (atomically).</summary>
    public static void WriteHashedFile(string path, IEnumerable<GatewayClientToken> tokens) =>
        OwnerOnlyFile.WriteAllBytesAtomic(path, ToHashedDocument(tokens));

    private static byte[] Document(IEnumerable<GatewayClientToken> tokens, bool hashed)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = hashed }))
        {
            w.WriteStartObject();
            w.WriteStartArray("tokens");
            foreach (var t in tokens)
            {
                w.WriteStartObject();
                w.WriteString("name", t.Name);
                if (hashed)
                {
                    w.WriteString("sha256", t.Sha256Hex);
                }
                else
                {
                    w.WriteString("token", t.Token);
                }

                if (t.Workflow is not null)
                {
                    w.WriteString("workflow", t.Workflow);
                }

                if (t.RatePerMinute is int r)
                {
                    w.WriteNumber("ratePerMinute", r);
                }

                w.WriteEndObject();
            }

            w.WriteEndArray();
            w.WriteEndObject();
        }

        var bytes = buffer.ToArray();
        CryptographicOperations.ZeroMemory(buffer.GetBuffer());
        return bytes;
    }

    private static GatewayClientToken Make(string secretName, string name, string token, string? workflow, int? rate)
    {
        if (token.Length < GatewayClientToken.MinimumLength)
        {
            throw new GatewayClientTokenException(secretName, GatewayClientTokenProblem.TooShort,
                $"The token in the secret '{secretName}' is shorter than {GatewayClientToken.MinimumLength} characters (the tokens Start-AiGateway creates are 46).");
        }

        if (token.Length > 4096 || token.Any(char.IsControl) || token.Any(char.IsWhiteSpace))
        {
            throw Invalid(secretName, "its token holds white space or control characters, or is longer than 4096 characters (a client could never send it in a header)");
        }

        if (workflow is not null && !WorkflowPattern().IsMatch(workflow))
        {
            throw Invalid(secretName, "its \"workflow\" is not a workflow name (letters, digits, '.', '-', '_', 1 to 64 characters)");
        }

        if (name.Length > 128 || name.Any(char.IsControl))
        {
            throw Invalid(secretName, "its client name is longer than 128 characters or holds control characters");
        }

        return new GatewayClientToken { Name = name, Token = token, Workflow = workflow, RatePerMinute = rate };
    }

    private static GatewayClientTokenException Invalid(string secretName, string why) =>
        new(secretName, GatewayClientTokenProblem.Invalid,
            $"The secret '{secretName}' is not a client token: {why}. A client token secret holds the token, or a hashtable or JSON object with \"token\" (and optionally \"name\", \"workflow\", \"ratePerMinute\").");

    private static string Truncate(string s) => s.Length <= 40 ? s : s[..40] + "...";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", RegexOptions.CultureInvariant)]
    private static partial Regex WorkflowPattern();
}
