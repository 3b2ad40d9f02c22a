// download: a UNC path (optionally through a share credential), an HTTP(S) URL or a local path,
// pulled by the target, sha256 checked; a UNC source as SYSTEM with run_as: system (SystemTask.cs).
using System;
using System.Collections.Generic;
using System.IO;
using System.Net;
using System.Text.RegularExpressions;

namespace Pushinstall.Agent
{
    public static class Download
    {
        /// <summary>The URL without its query: a SAS token there is a credential.</summary>
        public static string Shown(string url)
        {
            return url.Split('?')[0];
        }

        private static void CopyHttp(string url, string temp, long timeoutS)
        {
            try
            {
                // Tls12 (3072) by number: the enum name is missing on old .NET 4.0 builds
                ServicePointManager.SecurityProtocol |= (SecurityProtocolType)3072;
            }
            catch (NotSupportedException)
            {
            }
            HttpWebRequest request = (HttpWebRequest)WebRequest.Create(url);
            int milliseconds = (int)Math.Min(timeoutS * 1000, int.MaxValue);
            request.Timeout = milliseconds;
            request.ReadWriteTimeout = milliseconds;
            WebResponse response;
            try
            {
                response = request.GetResponse();
            }
            catch (WebException error)
            {
                HttpWebResponse failed = error.Response as HttpWebResponse;
                if (failed != null)
                {
                    throw new OpException("DownloadFailed", "HTTP " + (int)failed.StatusCode + " "
                                          + failed.StatusDescription + " from " + Shown(url));
                }
                throw new OpException("DownloadFailed", Shown(url) + ": " + error.Message);
            }
            using (response)
            using (Stream body = response.GetResponseStream())
            using (FileStream file = File.Create(temp))
            {
                body.CopyTo(file);
            }
        }

        private static string ShareRoot(string path)
        {
            Match match = Regex.Match(path, @"^(\\\\[^\\]+\\[^\\]+)");
            if (!match.Success)
            {
                throw new OpException("InvalidArgument", "not a UNC path: " + path);
            }
            return match.Groups[1].Value;
        }

        /// <summary>With a credential the share is connected by WNetAddConnection2 (no drive
        /// letter): the password goes from data to the API call, never onto a command line.</summary>
        private static void CopyUnc(string source, string temp, Dictionary<string, object> credential)
        {
            string shareRoot = ShareRoot(source);
            bool connected = false;
            if (credential != null)
            {
                Args parts = new Args(credential);
                string user = parts.Str("username");
                int code = Core.Windows.ConnectShare(shareRoot, user, parts.Str("password"));
                if (code == 0)
                {
                    connected = true;
                }
                else if (code == 5 || code == 86 || code == 1326 || code == 1327 || code == 1330 || code == 1331)
                {
                    throw new OpException("AccessDenied", "cannot connect to " + shareRoot + " as " + user + " (error " + code + ")");
                }
                else if (code == 53 || code == 67 || code == 1203)
                {
                    throw new OpException("NotFound", "share not found: " + shareRoot + " (error " + code + ")");
                }
                else if (code != 1219)
                {
                    // 1219: already connected to that server with other credentials: use it
                    throw new OpException("DownloadFailed", "cannot connect to " + shareRoot + " (error " + code + ")");
                }
            }
            try
            {
                File.Copy(source, temp, true);
            }
            finally
            {
                if (connected)
                {
                    Core.Windows.DisconnectShare(shareRoot);
                }
            }
        }

        /// <summary>Copies `source` to `temp` as this process's account: HTTP(S), UNC (with the
        /// share credential when given) or a local path. SystemTask's worker calls it too.</summary>
        public static void Fetch(string source, string temp, Dictionary<string, object> credential, long timeoutS)
        {
            if (Regex.IsMatch(source, "^https?://", RegexOptions.IgnoreCase))
            {
                CopyHttp(source, temp, timeoutS);
            }
            else if (source.StartsWith(@"\\"))
            {
                CopyUnc(source, temp, credential);
            }
            else
            {
                File.Copy(source, temp, true);
            }
        }

        public static object Run(Args args)
        {
            string source = args.Str("source");
            string destination = args.Str("destination");
            string expected = args.Str("sha256", "").ToLowerInvariant();
            Dictionary<string, object> credential = args.Dict("credential");
            long timeoutS = args.Long("timeout_s", 3600);
            string runAs = args.Str("run_as", "session");
            if (runAs != "session" && runAs != "system")
            {
                throw new OpException("InvalidArgument", "argument 'run_as' must be one of session, system");
            }
            // only a share needs the machine account: http(s) and local sources ignore it
            bool asSystem = runAs == "system";
            string before = null;
            Dictionary<string, object> result = new Dictionary<string, object>();
            if (File.Exists(destination))
            {
                before = Files.Sha256(destination);
                if (expected != "" && before == expected)
                {
                    result["changed"] = false;
                    result["sha256"] = before;
                    result["size"] = new FileInfo(destination).Length;
                    return result;
                }
            }
            string temp = Files.TempPath(destination, ".pushinstall-tmp");
            string actual;
            try
            {
                if (asSystem && source.StartsWith(@"\\"))
                {
                    actual = SystemTask.Copy(source, temp, credential, timeoutS);
                }
                else
                {
                    Fetch(source, temp, credential, timeoutS);
                    actual = Files.Sha256(temp);
                }
                if (expected != "" && actual != expected)
                {
                    throw new OpException("HashMismatch", Shown(source) + " has sha256 " + actual + ", expected " + expected);
                }
                Files.Settle(temp, destination, actual != before);
            }
            catch
            {
                Files.RemoveTemp(temp);
                throw;
            }
            result["changed"] = actual != before;
            result["sha256"] = actual;
            result["size"] = new FileInfo(destination).Length;
            return result;
        }
    }
}
