// The SSM Parameter Store of the guide's sample client, backed by a local file: every
// parameter read returns the PEM file named by SCV_PRIVATE_KEY_FILE.
const fs = require('fs');

class SSM {
  getParameters(query, callback) {
    try {
      const value = fs.readFileSync(process.env.SCV_PRIVATE_KEY_FILE, 'utf8');
      callback(null, { Parameters: query.Names.map(Name => ({ Name, Value: value })) });
    } catch (err) {
      callback(err, null);
    }
  }
}

module.exports = SSM;
